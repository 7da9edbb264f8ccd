//! `odm analyse`: not built yet (owned by the issue that delivers it).

/// Arguments of `odm analyse`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `odm analyse`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("odm analyse is not built yet")
}
