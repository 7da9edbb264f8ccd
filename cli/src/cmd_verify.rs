//! `odm verify`: not built yet (owned by the issue that delivers it).

/// Arguments of `odm verify`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `odm verify`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("odm verify is not built yet")
}
