//! `odm validate`: not built yet (owned by the issue that delivers it).

/// Arguments of `odm validate`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `odm validate`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("odm validate is not built yet")
}
