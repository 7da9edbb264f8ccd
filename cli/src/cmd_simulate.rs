//! `odm simulate`: not built yet (owned by the issue that delivers it).

/// Arguments of `odm simulate`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `odm simulate`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("odm simulate is not built yet")
}
