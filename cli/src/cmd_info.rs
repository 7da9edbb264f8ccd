//! `odm info`: not built yet (owned by the issue that delivers it).

/// Arguments of `odm info`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `odm info`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("odm info is not built yet")
}
