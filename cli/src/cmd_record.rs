//! `odm record`: not built yet (owned by the issue that delivers it).

/// Arguments of `odm record`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `odm record`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("odm record is not built yet")
}
