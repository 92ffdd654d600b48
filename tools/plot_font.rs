//! The TrueType font the plot tools draw text with: DejaVu Sans (Debian's
//! fonts-dejavu-core), or the file `XVS_PLOT_FONT` names. Shared by the plot examples.

use anyhow::{Context, Result};
use plotters::style::FontStyle;

/// Registers the font as "sans-serif" (plotters' ab_glyph backend has no system fonts).
pub fn register() -> Result<()> {
    let font =
        std::env::var("XVS_PLOT_FONT").unwrap_or_else(|_| "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf".into());
    let bytes = std::fs::read(&font).with_context(|| format!("reading the font {font} (XVS_PLOT_FONT)"))?;
    plotters::style::register_font("sans-serif", FontStyle::Normal, Box::leak(bytes.into_boxed_slice()))
        .map_err(|_| anyhow::anyhow!("{font} is not a TrueType font"))
}
