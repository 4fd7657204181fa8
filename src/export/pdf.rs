//! The PDF transcript: every channel of a package, in time order, for people
//! to read and courts to stamp.
//!
//! A cover page states the matter, the selection, who asked, when, and the
//! counts. Each channel then starts on a new page and its events follow in the
//! order the job hands them over (a stream: nothing is reordered). Replies are
//! indented under a note naming their thread root (with its author, time and
//! first words when the root was seen earlier in the channel); edits,
//! deletions, reactions, attachments and channel changes are lines of their
//! own, with their time. Page headers and footers come from
//! `pdf-transcript.toml` (the installation's copy, or the one built into the
//! binary), with optional Bates numbers on every page, cover included.
//!
//! The text is real text in an embedded DejaVu Sans, so it can be selected
//! and extracted (`pdftotext`). A character the font has no glyph for is
//! printed as a visible `⟦U+XXXX⟧` marker and reported as one
//! `glyph_replaced` warning per event; right-to-left text is laid out by a
//! simplified bidirectional reordering and reported as `rtl_simplified`.
//!
//! Memory stays bounded whatever the export's size: pages are laid out into
//! a compact buffer of glyph runs, and a `printpdf` document exists only while
//! a volume (`transcript-0001.pdf`, ...) of at most `volume.max_pages` pages
//! is written; thread roots are remembered up to a fixed number per channel.
//!
//! This module never drops a character silently, never reorders or skips an
//! event, and never leaves a partly written volume under its final name.

use std::collections::{HashMap, VecDeque};
use std::fmt::{self, Write as _};
use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use printpdf::lopdf::Object;
use printpdf::lopdf::content::Operation;
use printpdf::{
    Color, FontData, GlyphMetrics, Greyscale, IndirectFontRef, Mm, OffsetDateTime, PdfDocument,
    PdfLayerReference,
};
use rustc_hash::FxHashMap;
use serde::Deserialize;
use serde_json::Value;

use crate::event::{Event, EventKind, FileRef};

use super::{
    Bates, ChannelInfo, ExportError, ExportEvent, FormatWriter, PackageInfo, Warning, Warnings,
};

/// The layout file looked for in [`PackageInfo::template_dir`].
const TEMPLATE_FILE: &str = "pdf-transcript.toml";
/// The layout used when the installation has none of its own.
const BUILT_IN_TEMPLATE: &str = include_str!("../../templates/pdf-transcript.toml");
/// The only template version this code reads.
const TEMPLATE_VERSION: u32 = 1;
/// The largest volume a template may ask for: a volume is built in memory,
/// about 80 KB a page (measured), so this keeps an export near 100 MB.
const MAX_VOLUME_PAGES: u32 = 1000;
/// A volume also ends after this many glyphs (about 500 dense pages): a page
/// of zero-width marks ("Zalgo" text) holds far more glyphs than a page of
/// words, and must not make a volume outgrow its memory.
const MAX_VOLUME_GLYPHS: usize = 4_000_000;

/// DejaVu Sans (Bitstream Vera licence, `templates/fonts/LICENSE-DejaVu.txt`):
/// Latin, Greek, Cyrillic, Hebrew, Arabic and many symbols; no CJK, no emoji.
const REGULAR_FONT: &[u8] = include_bytes!("../../templates/fonts/DejaVuSans.ttf");
const BOLD_FONT: &[u8] = include_bytes!("../../templates/fonts/DejaVuSans-Bold.ttf");

const FORMAT: &str = "pdf";
/// Warning code: characters printed as `⟦U+XXXX⟧` markers.
pub const GLYPH_REPLACED: &str = "glyph_replaced";
/// Warning code: right-to-left text laid out by a simplified reordering.
pub const RTL_SIMPLIFIED: &str = "rtl_simplified";
/// Warning code: a channel held a different number of events than announced.
pub const COUNT_MISMATCH: &str = "count_mismatch";

/// Thread roots remembered per channel (their author, time and first words);
/// the oldest are forgotten first. About 200 bytes each.
const ROOTS_PER_CHANNEL: usize = 10_000;
/// How much of a thread root's text a reply's note quotes.
const SNIPPET_CHARS: usize = 60;
/// How many distinct replaced code points a warning lists.
const LISTED_CODEPOINTS: usize = 8;
const TAB_WIDTH: usize = 4;
const MARKER_OPEN: char = '⟦';
const MARKER_CLOSE: char = '⟧';
const ELLIPSIS: char = '…';
const PT_PER_MM: f32 = 72.0 / 25.4;
const MICROS_PER_DAY: i64 = 86_400_000_000;

// ---------------------------------------------------------------------------
// The template

/// `pdf-transcript.toml`, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateFile {
    version: u32,
    page: PageTemplate,
    header: BandTemplate,
    footer: BandTemplate,
    volume: VolumeTemplate,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PageTemplate {
    size: PageSize,
    margin_top_mm: f32,
    margin_bottom_mm: f32,
    margin_left_mm: f32,
    margin_right_mm: f32,
    font_size_pt: f32,
    line_height: f32,
}

#[derive(Debug, Clone, Copy, Deserialize)]
enum PageSize {
    A4,
    Letter,
}

impl PageSize {
    /// Width and height in millimetres.
    fn mm(self) -> (f32, f32) {
        match self {
            PageSize::A4 => (210.0, 297.0),
            PageSize::Letter => (215.9, 279.4),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BandTemplate {
    left: String,
    center: String,
    right: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VolumeTemplate {
    max_pages: u32,
}

/// What a header or footer field may show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placeholder {
    Matter,
    ExportId,
    Channel,
    Page,
    Pages,
    Volume,
    Bates,
}

impl Placeholder {
    const ALL: [(&'static str, Placeholder); 7] = [
        ("matter", Placeholder::Matter),
        ("export_id", Placeholder::ExportId),
        ("channel", Placeholder::Channel),
        ("page", Placeholder::Page),
        ("pages", Placeholder::Pages),
        ("volume", Placeholder::Volume),
        ("bates", Placeholder::Bates),
    ];

    fn parse(name: &str) -> Option<Placeholder> {
        Placeholder::ALL
            .into_iter()
            .find(|(known, _)| *known == name)
            .map(|(_, placeholder)| placeholder)
    }

    fn known_names() -> String {
        Placeholder::ALL
            .iter()
            .map(|(name, _)| format!("{{{name}}}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Field(Placeholder),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Align {
    Left,
    Center,
    Right,
}

/// One non-empty header or footer field.
#[derive(Debug, Clone)]
struct BandField {
    top: bool,
    align: Align,
    pieces: Vec<Piece>,
}

/// The validated layout, in PDF points (origin bottom left).
#[derive(Debug, Clone)]
struct Layout {
    page_width_mm: f32,
    page_height_mm: f32,
    page_width: f32,
    left: f32,
    right: f32,
    body_top: f32,
    body_bottom: f32,
    header_baseline: f32,
    footer_baseline: f32,
    font_size: f32,
    line_height: f32,
    max_pages: usize,
    bands: Vec<BandField>,
}

impl Layout {
    fn size(&self, style: Style) -> f32 {
        self.font_size * style.scale()
    }

    /// The vertical space one line of `style` takes.
    fn advance(&self, style: Style) -> f32 {
        self.size(style) * self.line_height
    }

    fn uses(&self, placeholder: Placeholder) -> bool {
        self.bands
            .iter()
            .any(|band| band.pieces.contains(&Piece::Field(placeholder)))
    }
}

/// Reads the layout: the installation's `pdf-transcript.toml` when
/// `template_dir` holds one, the built-in one otherwise.
fn load_layout(template_dir: Option<&Path>, bates_requested: bool) -> Result<Layout, ExportError> {
    let installed = match template_dir {
        Some(dir) => {
            let path = dir.join(TEMPLATE_FILE);
            match fs::read_to_string(&path) {
                Ok(text) => Some((path.display().to_string(), text)),
                Err(error) if error.kind() == io::ErrorKind::NotFound => None,
                Err(error) => return Err(ExportError::io(&path, error)),
            }
        }
        None => None,
    };
    let (file, text) = installed.unwrap_or_else(|| {
        (
            format!("{TEMPLATE_FILE} (built in)"),
            BUILT_IN_TEMPLATE.to_owned(),
        )
    });
    let layout = parse_layout(&text).map_err(|message| ExportError::Template {
        file: file.clone(),
        message,
    })?;
    if bates_requested && !layout.uses(Placeholder::Bates) {
        return Err(ExportError::Template {
            file,
            message: "header, footer: Bates numbering was asked for but no header or footer \
                      field holds {bates}"
                .into(),
        });
    }
    Ok(layout)
}

/// Parses and checks a template; the error names the field.
fn parse_layout(text: &str) -> Result<Layout, String> {
    let file: TemplateFile = toml::from_str(text).map_err(|error| toml_problem(text, &error))?;
    if file.version != TEMPLATE_VERSION {
        return Err(format!(
            "version: this holdfast reads version {TEMPLATE_VERSION}, the file has version {}",
            file.version
        ));
    }
    let page = &file.page;
    check_range("page.font_size_pt", page.font_size_pt, 5.0, 24.0)?;
    check_range("page.line_height", page.line_height, 1.0, 3.0)?;
    check_range("page.margin_top_mm", page.margin_top_mm, 8.0, 80.0)?;
    check_range("page.margin_bottom_mm", page.margin_bottom_mm, 8.0, 80.0)?;
    check_range("page.margin_left_mm", page.margin_left_mm, 5.0, 80.0)?;
    check_range("page.margin_right_mm", page.margin_right_mm, 5.0, 80.0)?;
    if !(1..=MAX_VOLUME_PAGES).contains(&file.volume.max_pages) {
        return Err(format!(
            "volume.max_pages: must be between 1 and {MAX_VOLUME_PAGES}, got {}",
            file.volume.max_pages
        ));
    }

    let (width_mm, height_mm) = page.size.mm();
    let mut bands = Vec::new();
    for (top, band, name) in [
        (true, &file.header, "header"),
        (false, &file.footer, "footer"),
    ] {
        for (align, text, side) in [
            (Align::Left, &band.left, "left"),
            (Align::Center, &band.center, "center"),
            (Align::Right, &band.right, "right"),
        ] {
            let pieces = parse_band_field(&format!("{name}.{side}"), text)?;
            if !pieces.is_empty() {
                bands.push(BandField { top, align, pieces });
            }
        }
    }

    let font_size = page.font_size_pt;
    let body_top = (height_mm - page.margin_top_mm) * PT_PER_MM;
    let body_bottom = page.margin_bottom_mm * PT_PER_MM;
    let left = page.margin_left_mm * PT_PER_MM;
    let right = (width_mm - page.margin_right_mm) * PT_PER_MM;
    let band_size = font_size * Style::Band.scale();
    let layout = Layout {
        page_width_mm: width_mm,
        page_height_mm: height_mm,
        page_width: width_mm * PT_PER_MM,
        left,
        right,
        body_top,
        body_bottom,
        header_baseline: (height_mm - page.margin_top_mm / 2.0) * PT_PER_MM - band_size / 2.0,
        footer_baseline: page.margin_bottom_mm / 2.0 * PT_PER_MM - band_size / 2.0,
        font_size,
        line_height: page.line_height,
        max_pages: file.volume.max_pages as usize,
        bands,
    };
    // Room for a heading and a few lines, and for a label column.
    if body_top - body_bottom < 12.0 * layout.advance(Style::Title) {
        return Err(
            "page: the margins leave too little room for text at this font size".to_owned(),
        );
    }
    if right - left < 30.0 * font_size {
        return Err("page: the margins leave too narrow a column at this font size".to_owned());
    }
    Ok(layout)
}

/// A TOML or schema error, naming the key when the error points at one.
fn toml_problem(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim();
    let Some(before) = error.span().and_then(|span| text.get(..span.start)) else {
        return message.to_owned();
    };
    let line_start = before.rfind('\n').map_or(0, |at| at + 1);
    let line_number = before.matches('\n').count() + 1;
    let line = text[line_start..].lines().next().unwrap_or("").trim();
    let table_name = |header: &str| {
        header
            .trim_start_matches('[')
            .split(']')
            .next()
            .unwrap_or("")
            .trim()
            .to_owned()
    };
    let field = if line.starts_with('[') {
        table_name(line)
    } else {
        let key = line.split_once('=').map_or("", |(key, _)| key.trim());
        let table = text[..line_start]
            .lines()
            .rev()
            .map(str::trim)
            .find(|earlier| earlier.starts_with('['))
            .map(table_name);
        match table {
            Some(table) if !key.is_empty() => format!("{table}.{key}"),
            _ => key.to_owned(),
        }
    };
    if field.is_empty() {
        format!("line {line_number}: {message}")
    } else {
        format!("{field} (line {line_number}): {message}")
    }
}

fn check_range(field: &str, value: f32, low: f32, high: f32) -> Result<(), String> {
    if (low..=high).contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "{field}: must be between {low} and {high}, got {value}"
        ))
    }
}

/// Splits a header or footer field into text and placeholders.
fn parse_band_field(field: &str, text: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            pieces.push(Piece::Text(rest[..open].to_owned()));
        }
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Err(format!("{field}: a {{ is not closed in {text:?}"));
        };
        let name = &after[..close];
        let Some(placeholder) = Placeholder::parse(name) else {
            return Err(format!(
                "{field}: unknown placeholder {{{name}}}; known: {}",
                Placeholder::known_names()
            ));
        };
        pieces.push(Piece::Field(placeholder));
        rest = &after[close + 1..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_owned()));
    }
    Ok(pieces)
}

// ---------------------------------------------------------------------------
// The font

/// What the layout needs from a TrueType font, read once from its tables:
/// glyph ids by (BMP) code point and advance widths. Also what `printpdf`
/// needs to embed it (widths, and the glyph-to-Unicode map that makes the
/// text extractable).
#[derive(Clone)]
struct FontTables(Arc<FontTablesInner>);

struct FontTablesInner {
    units_per_em: u16,
    ascender: i16,
    descender: i16,
    /// Advance width of each glyph, in font units.
    advances: Vec<u16>,
    /// Glyph id of each BMP code point; 0 when the font has none. Control
    /// characters are left at 0: they have nothing to print.
    glyph_by_char: Vec<u16>,
}

impl fmt::Debug for FontTables {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FontTables")
            .field("units_per_em", &self.0.units_per_em)
            .field("glyphs", &self.0.advances.len())
            .finish_non_exhaustive()
    }
}

fn be_u16(data: &[u8], at: usize) -> Option<u16> {
    let bytes = data.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([bytes[0], bytes[1]]))
}

fn be_u32(data: &[u8], at: usize) -> Option<u32> {
    let bytes = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

impl FontTables {
    /// Reads `head`, `hhea`, `maxp`, `hmtx` and the Unicode BMP `cmap`
    /// (format 4). Code points beyond the BMP are treated as missing.
    fn parse(font: &[u8]) -> Result<FontTables, String> {
        let table = |tag: &[u8; 4]| -> Result<&[u8], String> {
            let missing = || format!("no readable {} table", String::from_utf8_lossy(tag));
            let count = be_u16(font, 4).ok_or_else(missing)?;
            (0..usize::from(count))
                .find_map(|index| {
                    let record = 12 + 16 * index;
                    (font.get(record..record + 4)? == tag).then_some(())?;
                    let offset = be_u32(font, record + 8)? as usize;
                    let length = be_u32(font, record + 12)? as usize;
                    font.get(offset..offset.checked_add(length)?)
                })
                .ok_or_else(missing)
        };
        let malformed = |tag: &'static str| move || format!("malformed {tag} table");

        let head = table(b"head")?;
        let units_per_em = be_u16(head, 18).ok_or_else(malformed("head"))?;
        let hhea = table(b"hhea")?;
        let ascender = be_u16(hhea, 4).ok_or_else(malformed("hhea"))? as i16;
        let descender = be_u16(hhea, 6).ok_or_else(malformed("hhea"))? as i16;
        let long_metrics = usize::from(be_u16(hhea, 34).ok_or_else(malformed("hhea"))?);
        let glyph_count = usize::from(be_u16(table(b"maxp")?, 4).ok_or_else(malformed("maxp"))?);
        if units_per_em == 0 || long_metrics == 0 || long_metrics > glyph_count {
            return Err("inconsistent head, hhea or maxp table".to_owned());
        }

        let hmtx = table(b"hmtx")?;
        let mut advances = Vec::with_capacity(glyph_count);
        for glyph in 0..glyph_count {
            let advance = be_u16(hmtx, 4 * glyph.min(long_metrics - 1));
            advances.push(advance.ok_or_else(malformed("hmtx"))?);
        }

        let cmap = table(b"cmap")?;
        let subtable = (0..usize::from(be_u16(cmap, 2).ok_or_else(malformed("cmap"))?))
            .filter_map(|index| {
                let record = 4 + 8 * index;
                let platform = be_u16(cmap, record)?;
                let encoding = be_u16(cmap, record + 2)?;
                let offset = be_u32(cmap, record + 4)? as usize;
                let unicode_bmp =
                    (platform == 3 && encoding == 1) || (platform == 0 && encoding == 3);
                (unicode_bmp && be_u16(cmap, offset)? == 4).then(|| cmap.get(offset..))?
            })
            .next()
            .ok_or_else(|| "no Unicode BMP cmap (format 4)".to_owned())?;

        let mut glyph_by_char = vec![0_u16; 0x1_0000];
        let segments = usize::from(be_u16(subtable, 6).ok_or_else(malformed("cmap"))? / 2);
        let ends_at = 14;
        let starts_at = ends_at + 2 * segments + 2;
        let deltas_at = starts_at + 2 * segments;
        let range_offsets_at = deltas_at + 2 * segments;
        for segment in 0..segments {
            let field = |base: usize| be_u16(subtable, base + 2 * segment);
            let (Some(end), Some(start), Some(delta), Some(range_offset)) = (
                field(ends_at),
                field(starts_at),
                field(deltas_at),
                field(range_offsets_at),
            ) else {
                return Err("malformed cmap table".to_owned());
            };
            for code in start..=end.min(0xFFFE) {
                let glyph = if range_offset == 0 {
                    code.wrapping_add(delta)
                } else {
                    let at = range_offsets_at
                        + 2 * segment
                        + usize::from(range_offset)
                        + 2 * usize::from(code - start);
                    match be_u16(subtable, at) {
                        Some(0) | None => 0,
                        Some(glyph) => glyph.wrapping_add(delta),
                    }
                };
                let printable = !matches!(code, 0..=0x1F | 0x7F..=0x9F);
                if printable && usize::from(glyph) < glyph_count {
                    glyph_by_char[usize::from(code)] = glyph;
                }
            }
        }
        Ok(FontTables(Arc::new(FontTablesInner {
            units_per_em,
            ascender,
            descender,
            advances,
            glyph_by_char,
        })))
    }

    /// The glyph for `ch`, when the font has one.
    fn glyph(&self, ch: char) -> Option<u16> {
        let glyph = *self.0.glyph_by_char.get(ch as usize)?;
        (glyph != 0).then_some(glyph)
    }

    fn advance(&self, glyph: u16) -> u16 {
        self.0
            .advances
            .get(usize::from(glyph))
            .copied()
            .unwrap_or(0)
    }

    fn units_per_em(&self) -> f32 {
        f32::from(self.0.units_per_em)
    }
}

impl FontData for FontTables {
    fn font_metrics(&self) -> printpdf::FontMetrics {
        printpdf::FontMetrics {
            ascent: self.0.ascender,
            descent: self.0.descender,
            units_per_em: self.0.units_per_em,
        }
    }

    fn glyph_id(&self, c: char) -> Option<u16> {
        self.glyph(c)
    }

    fn glyph_ids(&self) -> HashMap<u16, char> {
        let mut map = HashMap::with_capacity(self.0.advances.len());
        for (code, &glyph) in self.0.glyph_by_char.iter().enumerate() {
            if glyph != 0
                && let Some(ch) = u32::try_from(code).ok().and_then(char::from_u32)
            {
                map.entry(glyph).or_insert(ch);
            }
        }
        map
    }

    fn glyph_count(&self) -> u16 {
        u16::try_from(self.0.advances.len()).unwrap_or(u16::MAX)
    }

    fn glyph_metrics(&self, glyph_id: u16) -> Option<GlyphMetrics> {
        let width = *self.0.advances.get(usize::from(glyph_id))?;
        Some(GlyphMetrics {
            width: u32::from(width),
            height: (i32::from(self.0.ascender) - i32::from(self.0.descender)).unsigned_abs(),
        })
    }
}

/// The two faces of a transcript.
#[derive(Debug, Clone)]
struct Fonts {
    regular: FontTables,
    bold: FontTables,
}

impl Fonts {
    fn load() -> Result<Fonts, ExportError> {
        let load = |name: &str, bytes: &[u8]| {
            let font = FontTables::parse(bytes).map_err(|problem| ExportError::Format {
                format: FORMAT,
                message: format!("embedded font {name}: {problem}"),
            })?;
            // The replacement marker must itself be printable.
            let marker = "⟦U+0123456789ABCDEF⟧… ";
            if let Some(missing) = marker.chars().find(|&ch| font.glyph(ch).is_none()) {
                return Err(ExportError::Format {
                    format: FORMAT,
                    message: format!("embedded font {name} has no glyph for {missing:?}"),
                });
            }
            Ok(font)
        };
        Ok(Fonts {
            regular: load("DejaVuSans.ttf", REGULAR_FONT)?,
            bold: load("DejaVuSans-Bold.ttf", BOLD_FONT)?,
        })
    }

    fn of(&self, style: Style) -> &FontTables {
        if style.bold() {
            &self.bold
        } else {
            &self.regular
        }
    }
}

// ---------------------------------------------------------------------------
// Text to glyphs

/// How a line is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    /// The cover's title.
    Title,
    /// A channel's heading.
    Heading,
    /// An event's first line: time, user, what happened.
    Head,
    /// Message text.
    Body,
    /// Message text inside a ``` block: spaces kept, broken anywhere.
    Code,
    /// Reply notes, reactions, channel and member changes, remarks.
    Note,
    /// Page headers and footers.
    Band,
}

impl Style {
    fn bold(self) -> bool {
        matches!(self, Style::Title | Style::Heading | Style::Head)
    }

    fn scale(self) -> f32 {
        match self {
            Style::Title => 1.8,
            Style::Heading => 1.35,
            Style::Head | Style::Body => 1.0,
            Style::Code => 0.95,
            Style::Note => 0.9,
            Style::Band => 0.85,
        }
    }

    /// Fill grey level: 0 is black.
    fn grey(self) -> f32 {
        match self {
            Style::Note | Style::Band => 0.35,
            Style::Code => 0.15,
            _ => 0.0,
        }
    }
}

/// One glyph placed on a line.
#[derive(Debug, Clone, Copy)]
struct Cell {
    glyph: u16,
    /// Advance width, in font units.
    advance: u16,
    space: bool,
    /// A line may break after this glyph.
    break_after: bool,
    class: BidiClass,
}

/// A character's direction, as far as the simplified reordering needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BidiClass {
    /// Strong left-to-right (letters of Latin, Greek, Cyrillic, ...), and
    /// our own markers.
    Left,
    /// Strong right-to-left (Hebrew, Arabic, ...).
    Right,
    /// Digits: they keep their order inside right-to-left text.
    Number,
    /// `.`, `,`, `:` and `/`: part of a number between digits.
    Separator,
    /// Spaces, punctuation, symbols: they take the direction around them.
    Neutral,
}

fn bidi_class(ch: char) -> BidiClass {
    if matches!(ch, '\u{0660}'..='\u{0669}' | '\u{06F0}'..='\u{06F9}') || ch.is_ascii_digit() {
        BidiClass::Number
    } else if is_rtl(ch) {
        BidiClass::Right
    } else if matches!(ch, '.' | ',' | ':' | '/') {
        BidiClass::Separator
    } else if ch.is_alphabetic() {
        BidiClass::Left
    } else {
        BidiClass::Neutral
    }
}

/// Characters of one unit (an event, the cover, a heading) the font could
/// not print as they are.
#[derive(Debug, Default)]
struct Replacements {
    /// Characters printed as markers.
    count: u64,
    /// The first distinct ones, for the warning.
    listed: Vec<u32>,
    /// Whether there were more distinct ones than listed.
    unlisted: bool,
    /// Right-to-left characters printed in logical order.
    rtl: u64,
}

impl Replacements {
    fn add(&mut self, code: u32) {
        self.count += 1;
        if !self.listed.contains(&code) {
            if self.listed.len() < LISTED_CODEPOINTS {
                self.listed.push(code);
            } else {
                self.unlisted = true;
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.count == 0 && self.rtl == 0
    }

    /// The warnings for what was collected (at most one per code), and a
    /// fresh start.
    fn take_warnings(
        &mut self,
        file: &str,
        event_id: Option<&str>,
        what: &str,
    ) -> [Option<Warning>; 2] {
        let prefix = if what.is_empty() {
            String::new()
        } else {
            format!("{what}: ")
        };
        let glyphs = (self.count > 0).then(|| {
            let mut listed = self
                .listed
                .iter()
                .map(|code| format!("U+{code:04X}"))
                .collect::<Vec<_>>()
                .join(", ");
            if self.unlisted {
                listed.push_str(", …");
            }
            Warning {
                file: file.to_owned(),
                event_id: event_id.map(str::to_owned),
                code: GLYPH_REPLACED.to_owned(),
                message: format!(
                    "{prefix}{} characters replaced ({listed}) by visible {MARKER_OPEN}U+XXXX{MARKER_CLOSE} markers: the embedded font has no glyph for them",
                    self.count
                ),
            }
        });
        let rtl = (self.rtl > 0).then(|| Warning {
            file: file.to_owned(),
            event_id: event_id.map(str::to_owned),
            code: RTL_SIMPLIFIED.to_owned(),
            message: format!(
                "{prefix}{} right-to-left characters laid out by a simplified bidirectional reordering (left-to-right paragraphs, no Arabic letter joining): where the order matters, compare with the archived text",
                self.rtl
            ),
        });
        self.count = 0;
        self.listed.clear();
        self.unlisted = false;
        self.rtl = 0;
        [glyphs, rtl]
    }
}

fn is_rtl(ch: char) -> bool {
    matches!(
        u32::from(ch),
        0x0590..=0x08FF | 0xFB1D..=0xFDFF | 0xFE70..=0xFEFF | 0x10800..=0x10FFF | 0x1E800..=0x1EFFF
    )
}

/// Appends the glyphs of `text` (one line: no newlines) to `cells`. Tabs
/// become spaces; characters without a glyph become `⟦U+XXXX⟧` markers and
/// are counted in `replaced`.
fn shape(font: &FontTables, text: &str, cells: &mut Vec<Cell>, replaced: &mut Replacements) {
    let space = font.glyph(' ').unwrap_or(0);
    let space_cell = Cell {
        glyph: space,
        advance: font.advance(space),
        space: true,
        break_after: true,
        class: BidiClass::Neutral,
    };
    let mut column = 0;
    for ch in text.chars() {
        if ch == '\t' {
            let spaces = TAB_WIDTH - column % TAB_WIDTH;
            cells.extend(std::iter::repeat_n(space_cell, spaces));
            column += spaces;
            continue;
        }
        column += 1;
        let class = bidi_class(ch);
        if class == BidiClass::Right {
            replaced.rtl += 1;
        }
        match font.glyph(ch) {
            Some(glyph) => cells.push(Cell {
                glyph,
                advance: font.advance(glyph),
                space: ch == ' ',
                break_after: matches!(ch, ' ' | '-' | '/' | '\u{2014}'),
                class,
            }),
            None => {
                replaced.add(u32::from(ch));
                push_marker(font, u32::from(ch), cells);
            }
        }
    }
}

/// `⟦U+4E2D⟧`: what is printed for a character the font cannot show.
fn push_marker(font: &FontTables, code: u32, cells: &mut Vec<Cell>) {
    let mut push = |ch: char, break_after: bool| {
        let glyph = font.glyph(ch).unwrap_or(0);
        cells.push(Cell {
            glyph,
            advance: font.advance(glyph),
            space: false,
            break_after,
            class: BidiClass::Left,
        });
    };
    push(MARKER_OPEN, false);
    push('U', false);
    push('+', false);
    let digits = match code {
        0..=0xFFFF => 4,
        0x1_0000..=0xF_FFFF => 5,
        _ => 6,
    };
    for shift in (0..digits).rev() {
        let nibble = (code >> (4 * shift)) & 0xF;
        let digit = char::from_digit(nibble, 16).map_or('?', |ch| ch.to_ascii_uppercase());
        push(digit, false);
    }
    push(MARKER_CLOSE, true);
}

/// Puts the glyphs of one line (`glyphs`, in the logical order of `cells`)
/// in display order: a simplified Unicode bidirectional algorithm for a
/// left-to-right paragraph. Each run of right-to-left text (from a
/// right-to-left character to the last right-to-left character or number
/// before the next left-to-right one, spaces and punctuation between them
/// included) is reversed, keeping numbers and combining marks in their
/// order. No Arabic letter joining.
fn reorder_visually(cells: &[Cell], glyphs: &mut [u16]) {
    if glyphs.len() != cells.len() || !cells.iter().any(|cell| cell.class == BidiClass::Right) {
        return;
    }
    let mut index = 0;
    while index < cells.len() {
        if cells[index].class != BidiClass::Right {
            index += 1;
            continue;
        }
        let mut end = index + 1;
        let mut scan = index + 1;
        while scan < cells.len() && cells[scan].class != BidiClass::Left {
            if matches!(cells[scan].class, BidiClass::Right | BidiClass::Number) {
                end = scan + 1;
            }
            scan += 1;
        }
        reverse_clusters(&cells[index..end], &mut glyphs[index..end]);
        index = end;
    }
}

/// Reverses a right-to-left run by clusters: a number (digits, with single
/// separators between them) or a glyph with the zero-width marks after it.
fn reverse_clusters(cells: &[Cell], glyphs: &mut [u16]) {
    let mut write = cells.len();
    let mut start = 0;
    while start < cells.len() {
        let mut end = start + 1;
        if cells[start].class == BidiClass::Number {
            loop {
                match cells.get(end).map(|cell| cell.class) {
                    Some(BidiClass::Number) => end += 1,
                    Some(BidiClass::Separator)
                        if cells.get(end + 1).map(|cell| cell.class) == Some(BidiClass::Number) =>
                    {
                        end += 2;
                    }
                    _ => break,
                }
            }
        }
        while cells.get(end).is_some_and(|cell| cell.advance == 0) {
            end += 1;
        }
        write -= end - start;
        for (offset, cell) in cells[start..end].iter().enumerate() {
            glyphs[write + offset] = cell.glyph;
        }
        start = end;
    }
}

/// Where the line starting at `start` ends: greedy, at most `max_units`
/// wide; prose breaks after a space or dash when it can, code anywhere.
fn line_end(cells: &[Cell], start: usize, max_units: u32, code: bool) -> usize {
    let mut width = 0_u32;
    let mut last_break = None;
    for (index, cell) in cells.iter().enumerate().skip(start) {
        let advance = u32::from(cell.advance);
        if width + advance > max_units && index > start {
            if code || cell.space {
                return index;
            }
            return last_break.unwrap_or(index);
        }
        width += advance;
        if cell.break_after {
            last_break = Some(index + 1);
        }
    }
    cells.len()
}

/// The lines of a message: `\n`, `\r\n` and `\r` all end one.
fn message_lines(text: &str) -> impl Iterator<Item = &str> {
    text.split('\n')
        .flat_map(|line| line.strip_suffix('\r').unwrap_or(line).split('\r'))
}

// ---------------------------------------------------------------------------
// Time and words

fn push_fmt(out: &mut String, args: fmt::Arguments<'_>) {
    out.write_fmt(args)
        .expect("formatting into a String never fails");
}

/// `09:00:00`, with `.250` or `.000250` when the time has them.
fn push_time_of_day(out: &mut String, at_us: i64) {
    let of_day = at_us.rem_euclid(MICROS_PER_DAY);
    let seconds = of_day / 1_000_000;
    let fraction = of_day % 1_000_000;
    push_fmt(
        out,
        format_args!(
            "{:02}:{:02}:{:02}",
            seconds / 3600,
            seconds / 60 % 60,
            seconds % 60
        ),
    );
    if fraction % 1000 != 0 {
        push_fmt(out, format_args!(".{fraction:06}"));
    } else if fraction != 0 {
        push_fmt(out, format_args!(".{:03}", fraction / 1000));
    }
}

/// `2026-03-02 09:00:00 UTC`.
fn push_date_time(out: &mut String, at_us: i64) {
    match DateTime::<Utc>::from_timestamp_micros(at_us) {
        Some(at) => push_fmt(out, format_args!("{} ", at.format("%Y-%m-%d"))),
        None => push_fmt(out, format_args!("{at_us} µs ")),
    }
    push_time_of_day(out, at_us);
    out.push_str(" UTC");
}

/// The words for a day heading: `2026-03-02, Monday (UTC)`.
fn day_heading(at_us: i64) -> String {
    match DateTime::<Utc>::from_timestamp_micros(at_us) {
        Some(at) => format!("{} (UTC)", at.format("%Y-%m-%d, %A")),
        None => format!("day of {at_us} µs (UTC)"),
    }
}

/// The first words of a message, on one line.
fn snippet(text: &str) -> String {
    let mut snippet = String::with_capacity(SNIPPET_CHARS + 4);
    let mut chars = 0;
    let mut last_was_space = false;
    for ch in text.trim().chars() {
        if chars == SNIPPET_CHARS {
            snippet.push(ELLIPSIS);
            return snippet;
        }
        let ch = if ch.is_whitespace() { ' ' } else { ch };
        if ch == ' ' && last_was_space {
            continue;
        }
        last_was_space = ch == ' ';
        snippet.push(ch);
        chars += 1;
    }
    snippet
}

/// What an event's first line says after the time and the user.
fn push_action(out: &mut String, event: &Event) {
    let post = event.post.as_deref().unwrap_or("(no post id)");
    let thread = |out: &mut String| {
        if let Some(parent) = &event.parent {
            push_fmt(out, format_args!(" (in thread {parent})"));
        }
    };
    let display_name = event.props.get("display_name").and_then(Value::as_str);
    let emoji = event.emoji.as_deref().unwrap_or("?");
    match event.kind {
        EventKind::Post => out.push_str(post),
        EventKind::Edit => {
            push_fmt(out, format_args!("edited {post}"));
            thread(out);
            out.push_str(", new text:");
        }
        EventKind::Delete => {
            push_fmt(out, format_args!("deleted {post}"));
            thread(out);
        }
        EventKind::ReactionAdd => {
            push_fmt(out, format_args!("added reaction :{emoji}: to {post}"));
            thread(out);
        }
        EventKind::ReactionRemove => {
            push_fmt(out, format_args!("removed reaction :{emoji}: from {post}"));
            thread(out);
        }
        EventKind::File => {
            let count = event.files.len();
            let noun = if count == 1 { "file" } else { "files" };
            push_fmt(out, format_args!("attached {count} {noun} to {post}"));
            thread(out);
        }
        EventKind::ChannelCreate => {
            out.push_str("created the channel");
            if let Some(name) = display_name {
                push_fmt(out, format_args!(" “{name}”"));
            }
        }
        EventKind::ChannelRename => {
            out.push_str("renamed the channel");
            if let Some(name) = display_name {
                push_fmt(out, format_args!(" to “{name}”"));
            }
        }
        EventKind::ChannelArchive => out.push_str("archived the channel"),
        EventKind::MemberJoin => out.push_str("joined the channel"),
        EventKind::MemberLeave => out.push_str("left the channel"),
    }
}

/// `file: name · 48213 bytes · mime · sha256 …`.
fn push_file_line(out: &mut String, file: &FileRef) {
    push_fmt(
        out,
        format_args!(
            "file: {} · {} bytes · {} · sha256 {}",
            file.name,
            file.size,
            file.mime.as_deref().unwrap_or("type not given"),
            file.sha256.as_deref().unwrap_or("not given"),
        ),
    );
}

fn volume_file_name(volume: u32) -> String {
    format!("transcript-{volume:04}.pdf")
}

fn bates_label(bates: &Bates, page_number: u64) -> String {
    let number = bates.start.saturating_add(page_number);
    format!(
        "{}{number:0width$}",
        bates.prefix,
        width = usize::from(bates.digits)
    )
}

// ---------------------------------------------------------------------------
// Pages

/// One line (or part of one) of text on a page.
#[derive(Debug, Clone, Copy)]
struct Run {
    x: f32,
    /// Baseline.
    y: f32,
    style: Style,
    glyphs_start: u32,
    glyphs_end: u32,
}

#[derive(Debug, Clone, Copy)]
struct PageRecord {
    first_run: u32,
    /// Index into [`Volume::channels`]; none on the cover.
    channel: Option<u32>,
    /// 0 for the cover, counting on across volumes (for Bates).
    number: u64,
}

/// The pages of the volume being laid out, as glyph runs. Headers and
/// footers are added when the volume is written (they need its page count).
#[derive(Debug, Default)]
struct Volume {
    pages: Vec<PageRecord>,
    runs: Vec<Run>,
    glyphs: Vec<u16>,
    /// `team / channel` of the volume's pages.
    channels: Vec<String>,
}

impl Volume {
    fn clear(&mut self) {
        self.pages.clear();
        self.runs.clear();
        self.glyphs.clear();
        self.channels.clear();
    }
}

/// A thread root, as a reply's note quotes it.
#[derive(Debug)]
struct RootPost {
    user: String,
    at_us: i64,
    snippet: String,
}

/// The roots seen in a channel, forgetting the oldest beyond a capacity.
#[derive(Debug)]
struct ThreadRoots {
    by_post: FxHashMap<String, RootPost>,
    order: VecDeque<String>,
    capacity: usize,
}

impl ThreadRoots {
    fn new(capacity: usize) -> ThreadRoots {
        ThreadRoots {
            by_post: FxHashMap::default(),
            order: VecDeque::new(),
            capacity,
        }
    }

    /// Remembers a root; the first post under an id wins.
    fn insert(&mut self, post: &str, root: RootPost) {
        if self.capacity == 0 || self.by_post.contains_key(post) {
            return;
        }
        if self.order.len() >= self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.by_post.remove(&oldest);
        }
        self.order.push_back(post.to_owned());
        self.by_post.insert(post.to_owned(), root);
    }

    fn get(&self, post: &str) -> Option<&RootPost> {
        self.by_post.get(post)
    }
}

/// The channel being written.
#[derive(Debug)]
struct ChannelState {
    label: String,
    announced_events: u64,
    written_events: u64,
    /// UTC day (days since the epoch) of the last event.
    last_day: Option<i64>,
    roots: ThreadRoots,
}

/// Writes the transcript of one package: `transcript-0001.pdf`, ... in the
/// package directory.
pub struct PdfWriter {
    package_dir: PathBuf,
    export_id: String,
    matter: String,
    created_at_us: i64,
    bates: Option<Bates>,
    layout: Layout,
    fonts: Fonts,
    volume: Volume,
    /// Number of the volume being laid out (from 1).
    volume_number: u32,
    /// Number the next page gets (0 is the cover).
    next_page_number: u64,
    /// Top of the free space on the current page.
    y: f32,
    channel: Option<ChannelState>,
    /// The event whose lines are being written, for a `(continued)` line
    /// when they run onto a new page.
    continuation: String,
    continuation_active: bool,
    files: Vec<PathBuf>,
    /// Warnings found where no [`Warnings`] was at hand.
    deferred: Vec<Warning>,
    replaced: Replacements,
    cells: Vec<Cell>,
    aux_cells: Vec<Cell>,
    scratch: String,
}

impl PdfWriter {
    /// Reads the layout, loads the fonts and lays out the cover page.
    pub fn create(package_dir: &Path, info: &PackageInfo) -> Result<PdfWriter, ExportError> {
        let layout = load_layout(info.template_dir.as_deref(), info.bates.is_some())?;
        let mut writer = PdfWriter {
            package_dir: package_dir.to_path_buf(),
            export_id: info.export_id.clone(),
            matter: info.matter.clone(),
            created_at_us: info.created_at_us,
            bates: info.bates.clone(),
            y: layout.body_top,
            layout,
            fonts: Fonts::load()?,
            volume: Volume::default(),
            volume_number: 1,
            next_page_number: 0,
            channel: None,
            continuation: String::new(),
            continuation_active: false,
            files: Vec::new(),
            deferred: Vec::new(),
            replaced: Replacements::default(),
            cells: Vec::new(),
            aux_cells: Vec::new(),
            scratch: String::new(),
        };
        writer.write_cover(info)?;
        Ok(writer)
    }

    fn write_cover(&mut self, info: &PackageInfo) -> Result<(), ExportError> {
        self.new_page()?;
        self.write_line(Style::Title, 0.0, "Chat transcript", false)?;
        self.write_line(
            Style::Note,
            0.0,
            &format!("holdfast export {}", info.export_id),
            false,
        )?;
        self.blank(1.0)?;

        let mut created = String::new();
        push_date_time(&mut created, info.created_at_us);
        let channel_count = info.channels.len();
        let channel_noun = if channel_count == 1 {
            "channel"
        } else {
            "channels"
        };
        let bates = match &info.bates {
            Some(bates) => format!(
                "{} on this page, then every page of every volume in sequence",
                bates_label(bates, 0)
            ),
            None => "not requested".to_owned(),
        };
        let matter = if info.matter.is_empty() {
            "(none given)"
        } else {
            &info.matter
        };
        for (label, value) in [
            ("Matter", matter),
            ("Selection", &info.selection),
            ("Requested by", &info.requested_by),
            ("Created", &created),
            ("Export id", &info.export_id),
            (
                "Events",
                &format!(
                    "{} events in {channel_count} {channel_noun}",
                    info.total_events
                ),
            ),
            ("Bates numbers", &bates),
        ] {
            self.write_labeled(label, value)?;
        }

        self.blank(1.0)?;
        self.write_line(Style::Head, 0.0, "Channels", false)?;
        for channel in &info.channels {
            let line = format!(
                "{} / {}: {} events",
                channel.team, channel.channel, channel.events
            );
            self.write_line(Style::Body, self.layout.font_size * 1.6, &line, false)?;
        }

        self.blank(1.0)?;
        self.write_line(Style::Head, 0.0, "How to read this transcript", false)?;
        for remark in [
            "Times are UTC. Each channel starts on a new page; its events follow in the order they happened.",
            "Replies are indented under a ↳ note naming their thread root. Edits, deletions, reactions, attachments and membership changes appear where they happened, each with its own time and the id of the message it concerns.",
            "A character the embedded font cannot show is printed as ⟦U+XXXX⟧ (its Unicode code point) and listed in warnings.jsonl. Right-to-left text is laid out by a simplified reordering, without Arabic letter joining.",
        ] {
            self.write_line(Style::Note, 0.0, remark, false)?;
        }

        let file = volume_file_name(self.volume_number);
        let found = self.replaced.take_warnings(&file, None, "cover page");
        self.deferred.extend(found.into_iter().flatten());
        Ok(())
    }

    /// A bold label with its value beside it, wrapped in a column.
    fn write_labeled(&mut self, label: &str, value: &str) -> Result<(), ExportError> {
        self.reserve(self.layout.advance(Style::Head))?;
        let mut cells = std::mem::take(&mut self.aux_cells);
        cells.clear();
        shape(
            self.fonts.of(Style::Head),
            label,
            &mut cells,
            &mut self.replaced,
        );
        let baseline = self.y - self.layout.size(Style::Head);
        self.push_run(Style::Head, self.layout.left, baseline, &cells);
        self.aux_cells = cells;
        // The value starts on the same baseline: same size, same advance.
        self.write_line(Style::Body, self.layout.font_size * 11.0, value, false)
    }

    /// Leaves `lines` empty lines of body text.
    fn blank(&mut self, lines: f32) -> Result<(), ExportError> {
        let height = self.layout.advance(Style::Body) * lines;
        if self.y - height < self.layout.body_bottom {
            return self.new_page();
        }
        self.y -= height;
        Ok(())
    }

    /// Makes room for `height` points on the current page, or starts a new
    /// one.
    fn reserve(&mut self, height: f32) -> Result<(), ExportError> {
        if self.y - height < self.layout.body_bottom {
            self.new_page()?;
        }
        Ok(())
    }

    /// Starts a page, writing out the volume first when it is full.
    fn new_page(&mut self) -> Result<(), ExportError> {
        if self.volume.pages.len() >= self.layout.max_pages
            || self.volume.glyphs.len() >= MAX_VOLUME_GLYPHS
        {
            self.flush_volume()?;
        }
        let channel = match &self.channel {
            Some(channel) => {
                if self.volume.channels.last() != Some(&channel.label) {
                    self.volume.channels.push(channel.label.clone());
                }
                u32::try_from(self.volume.channels.len() - 1).ok()
            }
            None => None,
        };
        self.volume.pages.push(PageRecord {
            first_run: u32::try_from(self.volume.runs.len())
                .expect("a volume holds far fewer than 4 billion runs: it is bounded in pages"),
            channel,
            number: self.next_page_number,
        });
        self.next_page_number += 1;
        self.y = self.layout.body_top;

        if self.volume.pages.len() == 1 && self.volume_number > 1 {
            let note = format!(
                "Volume {} of transcript {}, continued from {}",
                self.volume_number,
                self.export_id,
                volume_file_name(self.volume_number - 1)
            );
            self.write_unchecked_line(&note);
        }
        if self.continuation_active {
            let mut line = std::mem::take(&mut self.scratch);
            line.clear();
            line.push_str("(continued) ");
            line.push_str(&self.continuation);
            self.write_unchecked_line(&line);
            self.scratch = line;
        }
        Ok(())
    }

    /// A note line at the top of a fresh page, cut to one line.
    fn write_unchecked_line(&mut self, text: &str) {
        let mut cells = std::mem::take(&mut self.aux_cells);
        cells.clear();
        // Only our own words and an event's first line, already reported
        // when it was written: nothing to report twice.
        shape(
            self.fonts.of(Style::Note),
            text,
            &mut cells,
            &mut Replacements::default(),
        );
        let units = self.max_units(Style::Note, 0.0);
        let end = line_end(&cells, 0, units, true);
        cells.truncate(end);
        let baseline = self.y - self.layout.size(Style::Note);
        self.push_run(Style::Note, self.layout.left, baseline, &cells);
        self.y -= self.layout.advance(Style::Note);
        self.aux_cells = cells;
    }

    /// The width of a line of `style` at `indent`, in font units.
    fn max_units(&self, style: Style, indent: f32) -> u32 {
        let size = self.layout.size(style);
        let available = (self.layout.right - self.layout.left - indent).max(size * 8.0);
        (available / size * self.fonts.of(style).units_per_em()) as u32
    }

    fn push_run(&mut self, style: Style, x: f32, y: f32, cells: &[Cell]) {
        const GLYPHS_FIT: &str =
            "a volume ends after MAX_VOLUME_GLYPHS glyphs, plus one page of at most a few million";
        if cells.is_empty() {
            return;
        }
        let start = self.volume.glyphs.len();
        self.volume
            .glyphs
            .extend(cells.iter().map(|cell| cell.glyph));
        let end = self.volume.glyphs.len();
        reorder_visually(cells, &mut self.volume.glyphs[start..end]);
        self.volume.runs.push(Run {
            x,
            y,
            style,
            glyphs_start: u32::try_from(start).expect(GLYPHS_FIT),
            glyphs_end: u32::try_from(end).expect(GLYPHS_FIT),
        });
    }

    /// One line of text (no newlines), wrapped to the column.
    fn write_line(
        &mut self,
        style: Style,
        indent: f32,
        text: &str,
        code: bool,
    ) -> Result<(), ExportError> {
        let mut cells = std::mem::take(&mut self.cells);
        cells.clear();
        shape(self.fonts.of(style), text, &mut cells, &mut self.replaced);
        let max_units = self.max_units(style, indent);
        let advance = self.layout.advance(style);
        let mut start = 0;
        loop {
            let end = line_end(&cells, start, max_units, code);
            self.reserve(advance)?;
            let baseline = self.y - self.layout.size(style);
            self.push_run(
                style,
                self.layout.left + indent,
                baseline,
                &cells[start..end],
            );
            self.y -= advance;
            start = end;
            if !code {
                while cells.get(start).is_some_and(|cell| cell.space) {
                    start += 1;
                }
            }
            if start >= cells.len() {
                break;
            }
        }
        self.cells = cells;
        Ok(())
    }

    /// A message's text: its own lines, ``` blocks as code.
    fn write_message(&mut self, indent: f32, text: &str) -> Result<(), ExportError> {
        let code_indent = indent + self.layout.font_size;
        let mut in_code = false;
        for line in message_lines(text) {
            let fence = line.trim_start().starts_with("```");
            if in_code || fence {
                self.write_line(Style::Code, code_indent, line, true)?;
            } else {
                self.write_line(Style::Body, indent, line, false)?;
            }
            if fence {
                in_code = !in_code;
            }
        }
        Ok(())
    }

    fn write_event(
        &mut self,
        export_event: &ExportEvent,
        warnings: &mut Warnings,
    ) -> Result<(), ExportError> {
        let event = &export_event.event;
        let Some(channel) = self.channel.as_mut() else {
            return Err(ExportError::Format {
                format: FORMAT,
                message: format!("event {} arrived outside a channel", event.id),
            });
        };
        channel.written_events += 1;
        let base = self.layout.font_size;
        let indent = if event.parent.is_some() {
            base * 3.0
        } else {
            0.0
        };
        let body_indent = indent + base * 1.6;

        let day = event.at_us.div_euclid(MICROS_PER_DAY);
        let new_day = channel.last_day != Some(day);
        channel.last_day = Some(day);
        let reply_note = match (&event.kind, &event.parent) {
            (EventKind::Post, Some(parent)) => {
                let mut note = format!("↳ reply in thread {parent}");
                match channel.roots.get(parent) {
                    Some(root) => {
                        note.push_str(" to ");
                        note.push_str(&root.user);
                        note.push_str(", ");
                        push_date_time(&mut note, root.at_us);
                        push_fmt(&mut note, format_args!(": “{}”", root.snippet));
                    }
                    None => note.push_str(" (its root is not shown earlier in this channel)"),
                }
                Some(note)
            }
            _ => None,
        };
        if event.kind == EventKind::Post
            && event.parent.is_none()
            && let Some(post) = &event.post
        {
            channel.roots.insert(
                post,
                RootPost {
                    user: event.user.clone(),
                    at_us: event.at_us,
                    snippet: snippet(event.text.as_deref().unwrap_or("")),
                },
            );
        }

        // Keep a day heading, a reply note, the first line and the first
        // line of text together on a page.
        let head_style = match event.kind {
            EventKind::Post | EventKind::Edit | EventKind::Delete | EventKind::File => Style::Head,
            _ => Style::Note,
        };
        let mut needed = self.layout.advance(head_style);
        if event.text.is_some() || !event.files.is_empty() {
            needed += self.layout.advance(Style::Body);
        }
        if reply_note.is_some() {
            needed += self.layout.advance(Style::Note);
        }
        if new_day {
            needed += self.layout.advance(Style::Head) + self.layout.advance(Style::Body) * 0.4;
        }
        self.reserve(needed)?;
        if new_day {
            self.blank(0.4)?;
            self.write_line(Style::Head, 0.0, &day_heading(event.at_us), false)?;
        }
        if let Some(note) = &reply_note {
            self.write_line(Style::Note, indent, note, false)?;
        }

        let mut head = std::mem::take(&mut self.scratch);
        head.clear();
        push_time_of_day(&mut head, event.at_us);
        head.push_str(" UTC  ");
        head.push_str(&event.user);
        head.push_str("  ");
        push_action(&mut head, event);
        self.write_line(head_style, indent, &head, false)?;
        let file = self.volume_number;
        self.continuation.clear();
        self.continuation.push_str(&head);
        self.continuation_active = true;

        if let Some(text) = &event.text {
            if text.is_empty() {
                self.write_line(Style::Note, body_indent, "(empty text)", false)?;
            } else {
                self.write_message(body_indent, text)?;
            }
        }
        for attachment in &event.files {
            head.clear();
            push_file_line(&mut head, attachment);
            self.write_line(Style::Body, body_indent, &head, false)?;
        }
        self.continuation_active = false;
        self.scratch = head;

        if !self.replaced.is_empty() {
            let found = self
                .replaced
                .take_warnings(&volume_file_name(file), Some(&event.id), "");
            for warning in found.into_iter().flatten() {
                warnings.push(warning);
            }
        }
        Ok(())
    }

    /// Writes the volume laid out so far as its file and starts the next.
    fn flush_volume(&mut self) -> Result<(), ExportError> {
        if self.volume.pages.is_empty() {
            return Ok(());
        }
        let name = volume_file_name(self.volume_number);
        let mut band_replaced = Replacements::default();
        let context = RenderContext {
            layout: &self.layout,
            fonts: &self.fonts,
            export_id: &self.export_id,
            matter: &self.matter,
            bates: self.bates.as_ref(),
            created_at_us: self.created_at_us,
            volume_number: self.volume_number,
        };
        let bytes = render_volume(
            &context,
            &self.volume,
            &mut self.aux_cells,
            &mut band_replaced,
        )?;
        write_durably(&self.package_dir, &name, &bytes)?;
        drop(bytes);
        let found = band_replaced.take_warnings(&name, None, "page headers and footers");
        self.deferred.extend(found.into_iter().flatten());
        self.files.push(PathBuf::from(name));
        self.volume.clear();
        self.volume_number += 1;
        Ok(())
    }

    fn drain_deferred(&mut self, warnings: &mut Warnings) {
        for warning in self.deferred.drain(..) {
            warnings.push(warning);
        }
    }
}

impl FormatWriter for PdfWriter {
    fn begin_channel(&mut self, channel: &ChannelInfo) -> Result<(), ExportError> {
        let label = format!("{} / {}", channel.team, channel.channel);
        self.channel = Some(ChannelState {
            label: label.clone(),
            announced_events: channel.events,
            written_events: 0,
            last_day: None,
            roots: ThreadRoots::new(ROOTS_PER_CHANNEL),
        });
        self.new_page()?;
        self.write_line(Style::Heading, 0.0, &label, false)?;
        let noun = if channel.events == 1 {
            "event"
        } else {
            "events"
        };
        self.write_line(
            Style::Note,
            0.0,
            &format!("{} {noun} · times in UTC", channel.events),
            false,
        )?;
        let file = volume_file_name(self.volume_number);
        let found = self
            .replaced
            .take_warnings(&file, None, &format!("channel heading {label}"));
        self.deferred.extend(found.into_iter().flatten());
        Ok(())
    }

    fn write(&mut self, event: &ExportEvent, warnings: &mut Warnings) -> Result<(), ExportError> {
        self.drain_deferred(warnings);
        self.write_event(event, warnings)
    }

    fn end_channel(&mut self, warnings: &mut Warnings) -> Result<(), ExportError> {
        self.drain_deferred(warnings);
        let Some(channel) = self.channel.as_ref() else {
            return Ok(());
        };
        let (label, written, announced) = (
            channel.label.clone(),
            channel.written_events,
            channel.announced_events,
        );
        self.blank(0.5)?;
        let noun = if written == 1 { "event" } else { "events" };
        self.write_line(
            Style::Note,
            0.0,
            &format!("End of {label}: {written} {noun}."),
            false,
        )?;
        if written != announced {
            warnings.push(Warning {
                file: volume_file_name(self.volume_number),
                event_id: None,
                code: COUNT_MISMATCH.to_owned(),
                message: format!(
                    "channel {label}: {announced} events announced (and listed on the cover page), {written} written"
                ),
            });
        }
        // The closing line repeats the heading's words, reported with it.
        self.replaced = Replacements::default();
        self.channel = None;
        Ok(())
    }

    fn finish(mut self: Box<Self>, warnings: &mut Warnings) -> Result<Vec<PathBuf>, ExportError> {
        self.flush_volume()?;
        self.drain_deferred(warnings);
        Ok(std::mem::take(&mut self.files))
    }
}

// ---------------------------------------------------------------------------
// Writing a volume

/// What a volume's pages show besides their runs.
struct RenderContext<'a> {
    layout: &'a Layout,
    fonts: &'a Fonts,
    export_id: &'a str,
    matter: &'a str,
    bates: Option<&'a Bates>,
    created_at_us: i64,
    volume_number: u32,
}

fn pdf_error(error: &printpdf::Error) -> ExportError {
    ExportError::Format {
        format: FORMAT,
        message: error.to_string(),
    }
}

/// Positions in hundredths of a point, so that relative moves add up exactly.
fn hundredths(value: f32) -> i32 {
    (value * 100.0).round() as i32
}

/// Writes runs into a page's content stream, setting font, size and grey
/// only when they change and moving with relative `Td`.
struct Pen<'a> {
    layer: PdfLayerReference,
    regular: &'a IndirectFontRef,
    bold: &'a IndirectFontRef,
    layout: &'a Layout,
    style: Option<Style>,
    grey: Option<f32>,
    x: i32,
    y: i32,
}

impl Pen<'_> {
    fn draw(&mut self, style: Style, x: f32, y: f32, glyphs: &[u16]) {
        if glyphs.is_empty() {
            return;
        }
        if self.style != Some(style) {
            let font = if style.bold() {
                self.bold
            } else {
                self.regular
            };
            self.layer.set_font(font, self.layout.size(style));
            if self.grey != Some(style.grey()) {
                self.layer
                    .set_fill_color(Color::Greyscale(Greyscale::new(style.grey(), None)));
                self.grey = Some(style.grey());
            }
            self.style = Some(style);
        }
        let (x, y) = (hundredths(x), hundredths(y));
        self.layer.add_operation(Operation::new(
            "Td",
            vec![
                Object::Real((x - self.x) as f32 / 100.0),
                Object::Real((y - self.y) as f32 / 100.0),
            ],
        ));
        (self.x, self.y) = (x, y);
        self.layer.write_codepoints(glyphs.iter().copied());
    }
}

/// The volume as a PDF file's bytes.
fn render_volume(
    context: &RenderContext<'_>,
    volume: &Volume,
    cells: &mut Vec<Cell>,
    band_replaced: &mut Replacements,
) -> Result<Vec<u8>, ExportError> {
    let layout = context.layout;
    let (page_width, page_height) = (Mm(layout.page_width_mm), Mm(layout.page_height_mm));
    let title = format!(
        "Chat transcript {} (volume {})",
        context.export_id, context.volume_number
    );
    let (document, first_page, first_layer) =
        PdfDocument::new(title, page_width, page_height, "transcript");
    let mut document = document
        .with_creator("holdfast")
        .with_producer("holdfast")
        .with_subject(context.matter);
    if let Ok(created) =
        OffsetDateTime::from_unix_timestamp(context.created_at_us.div_euclid(1_000_000))
    {
        document = document
            .with_creation_date(created)
            .with_mod_date(created)
            .with_metadata_date(created);
    }
    let regular = document
        .add_external_font_data(REGULAR_FONT.to_vec(), context.fonts.regular.clone())
        .map_err(|error| pdf_error(&error))?;
    let bold = document
        .add_external_font_data(BOLD_FONT.to_vec(), context.fonts.bold.clone())
        .map_err(|error| pdf_error(&error))?;

    let band_font = context.fonts.of(Style::Band);
    let band_scale = layout.size(Style::Band) / band_font.units_per_em();
    let band_units = ((layout.right - layout.left) / band_scale) as u32;
    let pages = volume.pages.len();
    let mut text = String::new();
    let mut band_glyphs = Vec::new();
    for (index, page) in volume.pages.iter().enumerate() {
        let (page_index, layer_index) = if index == 0 {
            (first_page, first_layer)
        } else {
            document.add_page(page_width, page_height, "transcript")
        };
        let mut pen = Pen {
            layer: document.get_page(page_index).get_layer(layer_index),
            regular: &regular,
            bold: &bold,
            layout,
            style: None,
            grey: None,
            x: 0,
            y: 0,
        };
        pen.layer.begin_text_section();
        let runs_end = volume
            .pages
            .get(index + 1)
            .map_or(volume.runs.len(), |next| next.first_run as usize);
        for run in volume
            .runs
            .get(page.first_run as usize..runs_end)
            .unwrap_or(&[])
        {
            let glyphs = volume
                .glyphs
                .get(run.glyphs_start as usize..run.glyphs_end as usize)
                .unwrap_or(&[]);
            pen.draw(run.style, run.x, run.y, glyphs);
        }

        let channel = page
            .channel
            .and_then(|at| volume.channels.get(at as usize))
            .map_or("", String::as_str);
        for band in &layout.bands {
            text.clear();
            for piece in &band.pieces {
                match piece {
                    Piece::Text(words) => text.push_str(words),
                    Piece::Field(Placeholder::Matter) => text.push_str(context.matter),
                    Piece::Field(Placeholder::ExportId) => text.push_str(context.export_id),
                    Piece::Field(Placeholder::Channel) => text.push_str(channel),
                    Piece::Field(Placeholder::Page) => {
                        push_fmt(&mut text, format_args!("{}", index + 1))
                    }
                    Piece::Field(Placeholder::Pages) => {
                        push_fmt(&mut text, format_args!("{pages}"))
                    }
                    Piece::Field(Placeholder::Volume) => {
                        push_fmt(&mut text, format_args!("{}", context.volume_number));
                    }
                    Piece::Field(Placeholder::Bates) => {
                        if let Some(bates) = context.bates {
                            text.push_str(&bates_label(bates, page.number));
                        }
                    }
                }
            }
            if text.trim().is_empty() {
                continue;
            }
            cells.clear();
            shape(band_font, &text, cells, band_replaced);
            let mut end = line_end(cells, 0, band_units, true);
            if end < cells.len() {
                // Too long for the page: cut, and show that it was cut.
                let ellipsis = band_font.glyph(ELLIPSIS).unwrap_or(0);
                let ellipsis_units = u32::from(band_font.advance(ellipsis));
                end = line_end(cells, 0, band_units.saturating_sub(ellipsis_units), true);
                cells.truncate(end);
                cells.push(Cell {
                    glyph: ellipsis,
                    advance: band_font.advance(ellipsis),
                    space: false,
                    break_after: false,
                    class: BidiClass::Neutral,
                });
            }
            let width = cells
                .iter()
                .map(|cell| f32::from(cell.advance))
                .sum::<f32>()
                * band_scale;
            let x = match band.align {
                Align::Left => layout.left,
                Align::Center => (layout.page_width - width) / 2.0,
                Align::Right => layout.right - width,
            };
            let y = if band.top {
                layout.header_baseline
            } else {
                layout.footer_baseline
            };
            band_glyphs.clear();
            band_glyphs.extend(cells.iter().map(|cell| cell.glyph));
            reorder_visually(cells, &mut band_glyphs);
            pen.draw(Style::Band, x, y, &band_glyphs);
        }
        pen.layer.end_text_section();
    }
    document.save_to_bytes().map_err(|error| pdf_error(&error))
}

/// Writes `bytes` as `dir/name`: to a temporary name first, synced, then
/// renamed, and the directory synced.
fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), ExportError> {
    let path = dir.join(name);
    let partial = dir.join(format!(".{name}.partial"));
    let written = File::create(&partial).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    if let Err(error) = written {
        // Best effort: the error that matters is the one returned.
        let _ = fs::remove_file(&partial);
        return Err(ExportError::io(&partial, error));
    }
    fs::rename(&partial, &path).map_err(|error| ExportError::io(&path, error))?;
    File::open(dir)
        .and_then(|directory| directory.sync_all())
        .map_err(|error| ExportError::io(dir, error))
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    const CORPUS: &str = include_str!("../../tests/fixtures/export/corpus.ndjson");

    /// The corpus as the job hands it over: channels sorted by (team,
    /// channel), events by (at, line order).
    fn corpus_channels() -> Vec<(ChannelInfo, Vec<ExportEvent>)> {
        let mut events: Vec<ExportEvent> = CORPUS
            .lines()
            .filter(|line| !line.trim().is_empty())
            .enumerate()
            .map(|(line_index, line)| ExportEvent {
                seq: line_index as u64,
                event: Event::from_json_bytes(line.as_bytes())
                    .unwrap_or_else(|error| panic!("corpus line {}: {error}", line_index + 1)),
            })
            .collect();
        events.sort_by(|a, b| {
            (&a.event.team, &a.event.channel, a.event.at_us, a.seq).cmp(&(
                &b.event.team,
                &b.event.channel,
                b.event.at_us,
                b.seq,
            ))
        });
        let mut channels: Vec<(ChannelInfo, Vec<ExportEvent>)> = Vec::new();
        for event in events {
            let same = channels.last().is_some_and(|(info, _)| {
                info.team == event.event.team && info.channel == event.event.channel
            });
            if !same {
                channels.push((
                    ChannelInfo {
                        team: event.event.team.clone(),
                        channel: event.event.channel.clone(),
                        events: 0,
                    },
                    Vec::new(),
                ));
            }
            let (info, list) = channels.last_mut().expect("a channel was just pushed");
            info.events += 1;
            list.push(event);
        }
        channels
    }

    fn package_info(
        channels: &[(ChannelInfo, Vec<ExportEvent>)],
        bates: Option<Bates>,
        template_dir: Option<PathBuf>,
    ) -> PackageInfo {
        PackageInfo {
            export_id: "exp-000042".into(),
            matter: "Müller v. Enron (Case 4711)".into(),
            selection: "query: channel:case-4711 OR channel:west-desk, 2026-03-01..2026-03-31"
                .into(),
            requested_by: "compliance.officer".into(),
            created_at_us: 1_772_719_200_000_000, // 2026-03-05 14:00:00 UTC
            channels: channels.iter().map(|(info, _)| info.clone()).collect(),
            total_events: channels.iter().map(|(info, _)| info.events).sum(),
            bates,
            template_dir,
        }
    }

    fn hf_bates() -> Bates {
        Bates {
            prefix: "HF".into(),
            start: 1,
            digits: 6,
        }
    }

    /// Runs the writer the way the job does.
    fn export(
        dir: &Path,
        info: &PackageInfo,
        channels: &[(ChannelInfo, Vec<ExportEvent>)],
    ) -> (Vec<PathBuf>, Warnings) {
        let mut warnings = Warnings::default();
        let mut writer: Box<dyn FormatWriter> =
            Box::new(PdfWriter::create(dir, info).expect("create"));
        for (channel, events) in channels {
            writer.begin_channel(channel).expect("begin_channel");
            for event in events {
                writer.write(event, &mut warnings).expect("write");
            }
            writer.end_channel(&mut warnings).expect("end_channel");
        }
        let files = writer.finish(&mut warnings).expect("finish");
        (files, warnings)
    }

    /// Runs a poppler tool; its standard output. Fails (never skips) when
    /// the tool is missing, and when it complains about the file.
    fn poppler(tool: &str, args: &[&str], path: &Path, after: &[&str]) -> String {
        let output = match Command::new(tool).args(args).arg(path).args(after).output() {
            Ok(output) => output,
            Err(error) if error.kind() == io::ErrorKind::NotFound => panic!(
                "{tool} (poppler-utils) is missing: install it (apt-get install -y poppler-utils); the PDF tests need an independent reader"
            ),
            Err(error) => panic!("{tool} could not run: {error}"),
        };
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success() && stderr.trim().is_empty(),
            "{tool} on {}: {stderr}",
            path.display(),
        );
        String::from_utf8(output.stdout).expect("poppler tools write UTF-8")
    }

    /// The text of a PDF, per page, by an independent extractor.
    fn pdf_pages(path: &Path) -> Vec<String> {
        let text = poppler("pdftotext", &["-layout", "-enc", "UTF-8"], path, &["-"]);
        let mut pages: Vec<String> = text.split('\u{c}').map(str::to_owned).collect();
        if pages.last().is_some_and(|page| page.trim().is_empty()) {
            pages.pop();
        }
        pages
    }

    /// Whitespace runs (line ends and wrapping included) as one space.
    fn squash(text: &str) -> String {
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// Without any whitespace.
    fn compact(text: &str) -> String {
        text.split_whitespace().collect()
    }

    fn line_with<'a>(text: &'a str, needle: &str) -> &'a str {
        text.lines()
            .find(|line| line.contains(needle))
            .unwrap_or_else(|| panic!("no line holds {needle:?} in:\n{text}"))
    }

    #[test]
    fn corpus_transcript_reads_back_with_an_independent_extractor() {
        let dir = tempfile::tempdir().expect("temp dir");
        let channels = corpus_channels();
        let info = package_info(&channels, Some(hf_bates()), None);
        let (files, warnings) = export(dir.path(), &info, &channels);
        assert_eq!(files, vec![PathBuf::from("transcript-0001.pdf")]);
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .expect("read dir")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "only the volume is left: {leftovers:?}");

        let pages = pdf_pages(&dir.path().join("transcript-0001.pdf"));
        let text = pages.join("\n");
        let flat = squash(&text);

        // Cover page.
        let cover = squash(&pages[0]);
        for expected in [
            "Chat transcript",
            "Matter Müller v. Enron (Case 4711)",
            "Selection query: channel:case-4711 OR channel:west-desk, 2026-03-01..2026-03-31",
            "Requested by compliance.officer",
            "Created 2026-03-05 14:00:00 UTC",
            "Export id exp-000042",
            "Events 23 events in 2 channels",
            "legal / case-4711: 17 events",
            "trading / west-desk: 6 events",
            "HF000001 on this page",
        ] {
            assert!(
                cover.contains(expected),
                "cover lacks {expected:?}:\n{cover}"
            );
        }

        // Every message text, Latin, accented, Cyrillic, Greek, with
        // XML-special characters, as archived (line breaks aside).
        for (_, events) in &channels {
            for export_event in events {
                let event = &export_event.event;
                let Some(message) = &event.text else { continue };
                if event.id == "ev-014" || event.id == "ev-019" {
                    continue; // checked below: markers, right-to-left
                }
                assert!(
                    flat.contains(&squash(message)),
                    "{} text {message:?} missing from:\n{text}",
                    event.id
                );
            }
        }
        assert!(flat.contains(
            "Третье сообщение в ту же секунду. Ελληνικά: η συμφωνία. Ærøskøbing, Łódź, naïve café."
        ));
        assert!(
            flat.contains("Clause 7 conflicts with the ISDA schedule. <see redline> & \"notes\"")
        );
        // Newlines honoured: the lines of ev-008 are lines of the page.
        assert!(
            line_with(&text, "=HYPERLINK")
                .trim_end()
                .ends_with("is not a formula here")
        );
        assert!(line_with(&text, "second line").trim() == "second line");
        // The code block keeps its indentation.
        let code_line = line_with(&text, "println!(\"code block\");");
        let fn_line = line_with(&text, "fn main() {");
        let indent = |line: &str| line.len() - line.trim_start().len();
        assert!(
            indent(code_line) > indent(fn_line),
            "{fn_line:?} / {code_line:?}"
        );

        // Times, including identical ones and microseconds.
        for head in ["kay.mann p-3", "sara.shackleton p-4", "jeff.dasovich p-5"] {
            assert!(line_with(&text, head).contains("09:10:00 UTC"), "{head}");
        }
        assert!(line_with(&text, "phillip.allen").contains("09:00:00.000250 UTC"));
        assert!(text.contains("2026-03-02, Monday (UTC)"));
        assert!(text.contains("2026-03-03, Tuesday (UTC)"));

        // Edits and deletes, marked, with their time.
        let edit = line_with(&text, "edited p-2");
        assert!(
            edit.contains("09:07:00 UTC") && edit.contains("sara.shackleton"),
            "{edit}"
        );
        assert!(edit.contains("(in thread p-1)"), "{edit}");
        assert!(line_with(&text, "edited p-2").contains("new text:"));
        let edits_t1: Vec<&str> = text
            .lines()
            .filter(|line| line.contains("edited t-1"))
            .collect();
        assert_eq!(edits_t1.len(), 2, "{edits_t1:?}");
        assert!(edits_t1[0].contains("09:01:00 UTC") && edits_t1[1].contains("09:02:00 UTC"));
        let delete = line_with(&text, "deleted p-3");
        assert!(
            delete.contains("09:12:00 UTC") && delete.contains("kay.mann"),
            "{delete}"
        );

        // Reactions: added, removed, emoji, who.
        let added = line_with(&text, "added reaction :thumbsup: to p-2");
        assert!(
            added.contains("kay.mann") && added.contains("09:05:30 UTC"),
            "{added}"
        );
        let removed = line_with(&text, "removed reaction :white_check_mark: from p-5");
        assert!(removed.contains("jeff.dasovich") && removed.contains("09:14:00 UTC"));
        assert!(text.contains("added reaction :white_check_mark: to p-5"));

        // Attachments: name, size, type, sha256.
        assert!(flat.contains("attached 1 file to p-1"));
        // (Long lines wrap after a dash or a space: compare without spaces.)
        assert!(compact(&text).contains(&compact(
            "file: settlement-draft-v3.docx · 48213 bytes · application/vnd.openxmlformats-officedocument.wordprocessingml.document · sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        )), "{flat}");
        assert!(flat.contains("attached 2 files to t-3"));
        assert!(
            flat.contains("file: positions.xlsx · 1024 bytes · type not given · sha256 not given")
        );
        assert!(
            flat.contains(
                "file: Überblick Q1.pdf · 2048 bytes · application/pdf · sha256 not given"
            )
        );

        // Threads: replies marked and indented, naming the root.
        assert!(flat.contains(
            "↳ reply in thread p-1 to kay.mann, 2026-03-02 09:00:00 UTC: “Draft settlement for Müller attached; please review by Frida…”"
        ), "{flat}");
        assert!(flat.contains(
            "↳ reply in thread t-1 to john.arnold, 2026-03-02 09:00:00 UTC: “Cal-27 at 42.10"
        ));
        let root_head = line_with(&text, "kay.mann p-1");
        let reply_head = line_with(&text, "sara.shackleton p-2");
        assert!(
            indent(reply_head) > indent(root_head),
            "{root_head:?} / {reply_head:?}"
        );

        // Channel and membership changes as system lines.
        assert!(flat.contains("kay.mann created the channel “Case 4711 – Müller v. Enron”"));
        assert!(flat.contains("sara.shackleton joined the channel"));
        assert!(flat.contains("kay.mann renamed the channel to “Case 4711 (privileged)”"));
        assert!(flat.contains("jeff.dasovich left the channel"));
        assert!(flat.contains("End of legal / case-4711: 17 events."));

        // Characters the font lacks: a visible marker, never dropped, and
        // one warning for the event.
        assert!(flat.contains("⟦U+4E2D⟧⟦U+6587⟧"), "{flat}");
        assert!(flat.contains("⟦U+1F680⟧ — scripts the font lacks must show a marker."));
        assert!(!flat.contains('中') && !flat.contains('🚀'));
        let replaced: Vec<&Warning> = warnings
            .items()
            .iter()
            .filter(|warning| warning.code == GLYPH_REPLACED)
            .collect();
        assert_eq!(replaced.len(), 1, "{replaced:?}");
        assert_eq!(replaced[0].event_id.as_deref(), Some("ev-014"));
        assert_eq!(replaced[0].file, "transcript-0001.pdf");
        assert!(
            replaced[0]
                .message
                .starts_with("16 characters replaced (U+4E2D, U+6587,"),
            "{}",
            replaced[0].message
        );
        // Right-to-left text: printed (in logical order) and reported.
        assert!(flat.contains("Confirmed."));
        assert!(flat.contains("are right-to-left."));
        assert!(flat.contains("שלום") && flat.contains("مرحبا"), "{flat}");
        let rtl: Vec<&Warning> = warnings
            .items()
            .iter()
            .filter(|warning| warning.code == RTL_SIMPLIFIED)
            .collect();
        assert_eq!(rtl.len(), 1, "{rtl:?}");
        assert_eq!(rtl[0].event_id.as_deref(), Some("ev-019"));
        assert_eq!(warnings.len(), 2, "{:?}", warnings.items());

        // Headers and footers: matter, channel, page numbers, Bates on
        // every page, the cover included.
        let total = pages.len();
        assert!(total >= 3, "cover and one page per channel: {total}");
        for (index, page) in pages.iter().enumerate() {
            let number = index + 1;
            assert!(
                page.contains(&format!("page {number} of {total}")),
                "page {number}:\n{page}"
            );
            assert!(
                page.contains(&format!("HF{number:06}")),
                "page {number}:\n{page}"
            );
            assert!(page.contains("exp-000042 · volume 1"));
            assert!(page.contains("Müller v. Enron (Case 4711)"));
        }
        assert!(pages[1].contains("legal / case-4711"));
        // Both faces embedded, with a Unicode map (what makes the text
        // extractable).
        let fonts = poppler(
            "pdffonts",
            &[],
            &dir.path().join("transcript-0001.pdf"),
            &[],
        );
        let embedded: Vec<&str> = fonts
            .lines()
            .filter(|line| line.contains("CID TrueType"))
            .collect();
        assert_eq!(embedded.len(), 2, "{fonts}");
        for line in embedded {
            let columns: Vec<&str> = line.split_whitespace().collect();
            // name, "CID TrueType", encoding, emb, sub, uni, object id
            assert_eq!(columns.get(3), Some(&"Identity-H"), "{fonts}");
            assert_eq!(columns.get(4), Some(&"yes"), "embedded: {fonts}");
            assert_eq!(columns.get(6), Some(&"yes"), "Unicode map: {fonts}");
        }
        assert!(pages[total - 1].contains("trading / west-desk"));
    }

    #[test]
    fn tiny_volumes_split_the_transcript_and_bates_numbers_continue() {
        let templates = tempfile::tempdir().expect("temp dir");
        let template = BUILT_IN_TEMPLATE.replace("max_pages = 500", "max_pages = 2");
        assert_ne!(template, BUILT_IN_TEMPLATE);
        fs::write(templates.path().join(TEMPLATE_FILE), template).expect("write template");
        let dir = tempfile::tempdir().expect("temp dir");
        let mut channels = corpus_channels();
        // A long message, to run over pages.
        let long_text = (1..=150)
            .map(|line| format!("line {line} of a long message"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut long_post = channels[1].1[0].clone();
        long_post.event.id = "ev-long".into();
        long_post.event.post = Some("t-long".into());
        long_post.event.at_us += 1;
        long_post.event.text = Some(long_text);
        channels[1].1.insert(1, long_post);
        channels[1].0.events += 1;
        let bates = Bates {
            prefix: "ACME-".into(),
            start: 41,
            digits: 4,
        };
        let info = package_info(&channels, Some(bates), Some(templates.path().to_path_buf()));
        let (files, _) = export(dir.path(), &info, &channels);

        assert!(files.len() >= 3, "{files:?}");
        let mut bates_number = 41;
        let mut all_text = String::new();
        for (index, file) in files.iter().enumerate() {
            assert_eq!(
                file,
                &PathBuf::from(format!("transcript-{:04}.pdf", index + 1))
            );
            let pages = pdf_pages(&dir.path().join(file));
            assert!(
                !pages.is_empty() && pages.len() <= 2,
                "{file:?}: {} pages",
                pages.len()
            );
            for (page_index, page) in pages.iter().enumerate() {
                assert!(page.contains(&format!("page {} of {}", page_index + 1, pages.len())));
                assert!(page.contains(&format!("volume {}", index + 1)));
                assert!(
                    page.contains(&format!("ACME-{bates_number:04}")),
                    "{file:?} page {}: expected ACME-{bates_number:04}:\n{page}",
                    page_index + 1
                );
                bates_number += 1;
            }
            if index > 0 {
                assert!(pages[0].contains(&format!("continued from transcript-{index:04}.pdf")));
            }
            all_text.push_str(&pages.join("\n"));
        }
        // The long message is whole, in order, and says where it goes on.
        let flat = squash(&all_text);
        let mut from = 0;
        for line in 1..=150 {
            let needle = format!("line {line} of a long message");
            let found = flat[from..]
                .find(&needle)
                .unwrap_or_else(|| panic!("{needle:?} missing or out of order"));
            from += found + needle.len();
        }
        let continued = flat
            .matches("(continued) 09:00:00.000001 UTC john.arnold t-long")
            .count();
        assert!(
            continued >= 2,
            "{continued} continuation lines in:\n{all_text}"
        );
        // The volumes are complete PDF files, nothing left half-written.
        for entry in fs::read_dir(dir.path()).expect("read dir") {
            let name = entry.expect("entry").file_name();
            assert!(!name.to_string_lossy().ends_with(".partial"), "{name:?}");
        }
    }

    #[test]
    fn unbroken_words_wrap_and_a_wrong_count_is_reported() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut channels = corpus_channels();
        channels.truncate(1);
        let word = "x".repeat(3000);
        channels[0].1[2].event.text = Some(format!("{word} ende"));
        channels[0].0.events += 1; // announced, never written
        let info = package_info(&channels, None, None);
        let (files, warnings) = export(dir.path(), &info, &channels);
        let text = pdf_pages(&dir.path().join(&files[0])).join("\n");
        assert!(compact(&text).contains(&format!("{word}ende")));
        assert!(text.lines().all(|line| line.chars().count() < 200));
        let mismatch: Vec<&Warning> = warnings
            .items()
            .iter()
            .filter(|warning| warning.code == COUNT_MISMATCH)
            .collect();
        assert_eq!(mismatch.len(), 1, "{:?}", warnings.items());
        assert_eq!(
            mismatch[0].message,
            "channel legal / case-4711: 18 events announced (and listed on the cover page), 17 written"
        );
    }

    #[test]
    fn built_in_template_is_valid_and_used_when_the_directory_has_none() {
        let layout = parse_layout(BUILT_IN_TEMPLATE).expect("built-in template");
        assert_eq!(layout.max_pages, 500);
        assert!(layout.uses(Placeholder::Bates));
        let empty = tempfile::tempdir().expect("temp dir");
        let layout = load_layout(Some(empty.path()), true).expect("falls back to built in");
        assert_eq!(layout.bands.len(), 5);
    }

    fn template_error(template: &str, bates: bool) -> (String, String) {
        let templates = tempfile::tempdir().expect("temp dir");
        let path = templates.path().join(TEMPLATE_FILE);
        fs::write(&path, template).expect("write template");
        let dir = tempfile::tempdir().expect("temp dir");
        let channels = corpus_channels();
        let bates = bates.then(hf_bates);
        let info = package_info(&channels, bates, Some(templates.path().to_path_buf()));
        match PdfWriter::create(dir.path(), &info) {
            Err(ExportError::Template { file, message }) => {
                assert_eq!(file, path.display().to_string());
                (file, message)
            }
            Err(other) => panic!("expected a template error, got {other}"),
            Ok(_) => panic!("expected a template error, the template was accepted"),
        }
    }

    #[test]
    fn a_bad_template_is_an_error_naming_the_field() {
        let cases = [
            (
                BUILT_IN_TEMPLATE
                    .replace("line_height = 1.3", "line_height = 1.3\ncolour = \"red\""),
                "page.colour (line 27): unknown field `colour`",
            ),
            (
                BUILT_IN_TEMPLATE.replace("font_size_pt = 9.0", "font_size_pt = 100.0"),
                "page.font_size_pt: must be between 5 and 24, got 100",
            ),
            (
                BUILT_IN_TEMPLATE.replace("font_size_pt = 9.0", "font_size_pt = \"big\""),
                "page.font_size_pt (line 25): invalid type",
            ),
            (
                BUILT_IN_TEMPLATE.replace("max_pages = 500", "max_pages = 0"),
                "volume.max_pages",
            ),
            (
                BUILT_IN_TEMPLATE.replace("page {page} of {pages}", "page {pagez}"),
                "footer.center: unknown placeholder {pagez}",
            ),
            (
                BUILT_IN_TEMPLATE.replace("size = \"A4\"", "size = \"A5\""),
                "page.size (line 20): unknown variant `A5`",
            ),
            (
                BUILT_IN_TEMPLATE.replace("size = \"A4\"", ""),
                "page (line 19): missing field `size`",
            ),
            (
                BUILT_IN_TEMPLATE.replace("version = 1", "version = 2"),
                "version: this holdfast reads version 1",
            ),
        ];
        for (template, expected) in cases {
            let (_, message) = template_error(&template, false);
            assert!(
                message.contains(expected),
                "{expected:?} not in {message:?}"
            );
        }
        // Bates numbers asked for, but nowhere to print them.
        let (_, message) = template_error(&BUILT_IN_TEMPLATE.replace("{bates}\"", "\""), true);
        assert!(message.contains("{bates}"), "{message}");
    }

    fn regular() -> FontTables {
        Fonts::load().expect("embedded fonts").regular
    }

    #[test]
    fn the_font_covers_european_scripts_and_not_cjk() {
        let font = regular();
        for ch in "AzÄöüßÆøŁłÅ€ÀçñЖжЩщΩωηάΣ–—“”…·↳⟦⟧שم".chars()
        {
            assert!(font.glyph(ch).is_some(), "{ch:?} ({:04X})", u32::from(ch));
        }
        for ch in ['中', '語', 'テ', '한', '🚀', '\u{7}', '\u{85}'] {
            assert!(font.glyph(ch).is_none(), "{ch:?}");
        }
        assert_eq!(font.units_per_em(), 2048.0);
        assert!(
            font.advance(font.glyph('W').expect("W")) > font.advance(font.glyph('i').expect("i"))
        );
    }

    #[test]
    fn missing_glyphs_become_markers_and_are_counted() {
        let font = regular();
        let mut cells = Vec::new();
        let mut replaced = Replacements::default();
        shape(&font, "a中b🚀中\u{7}", &mut cells, &mut replaced);
        let marker_len = "⟦U+4E2D⟧".chars().count();
        assert_eq!(
            cells.len(),
            2 + 3 * marker_len + "⟦U+1F680⟧".chars().count()
        );
        assert_eq!(replaced.count, 4);
        assert_eq!(replaced.listed, vec![0x4E2D, 0x1F680, 0x7]);
        let [glyphs, rtl] = replaced.take_warnings("transcript-0001.pdf", Some("ev-1"), "");
        let glyphs = glyphs.expect("a glyph warning");
        assert_eq!(glyphs.code, GLYPH_REPLACED);
        assert!(
            glyphs
                .message
                .starts_with("4 characters replaced (U+4E2D, U+1F680, U+0007)"),
            "{}",
            glyphs.message
        );
        assert!(rtl.is_none());
        assert!(replaced.is_empty());

        let decoded: String = cells
            .iter()
            .filter_map(|cell| {
                font.0
                    .glyph_by_char
                    .iter()
                    .position(|&glyph| glyph == cell.glyph)
                    .and_then(|code| char::from_u32(code as u32))
            })
            .collect();
        assert_eq!(decoded, "a⟦U+4E2D⟧b⟦U+1F680⟧⟦U+4E2D⟧⟦U+0007⟧");
    }

    #[test]
    fn tabs_expand_and_lines_wrap_at_spaces_or_anywhere_in_code() {
        let font = regular();
        let mut cells = Vec::new();
        shape(&font, "a\tb", &mut cells, &mut Replacements::default());
        assert_eq!(cells.len(), 5, "a, three spaces, b");

        cells.clear();
        shape(
            &font,
            "aaaa bbbb cccc",
            &mut cells,
            &mut Replacements::default(),
        );
        let a = u32::from(font.advance(font.glyph('a').expect("a")));
        let space = u32::from(font.advance(font.glyph(' ').expect("space")));
        let width = 7 * a + space;
        assert_eq!(line_end(&cells, 0, width, false), 5, "after \"aaaa \"");
        assert_eq!(line_end(&cells, 5, width, false), 10);
        assert_eq!(line_end(&cells, 10, width, false), 14);
        assert_eq!(line_end(&cells, 0, 7 * a, true), 7, "code breaks anywhere");
        assert_eq!(line_end(&cells, 0, a / 2, false), 1, "always progresses");
    }

    #[test]
    fn message_lines_honour_every_line_end() {
        let lines: Vec<&str> = message_lines("a\nb\r\nc\rd\n").collect();
        assert_eq!(lines, vec!["a", "b", "c", "d", ""]);
    }

    #[test]
    fn times_are_utc_with_their_precision() {
        let mut out = String::new();
        push_date_time(&mut out, 1_772_442_000_000_250);
        assert_eq!(out, "2026-03-02 09:00:00.000250 UTC");
        out.clear();
        push_time_of_day(&mut out, 1_772_442_000_120_000);
        assert_eq!(out, "09:00:00.120");
        assert_eq!(
            day_heading(1_772_442_000_000_000),
            "2026-03-02, Monday (UTC)"
        );
    }

    #[test]
    fn thread_roots_stay_bounded_and_forget_the_oldest() {
        let mut roots = ThreadRoots::new(3);
        for index in 0..10 {
            roots.insert(
                &format!("p-{index}"),
                RootPost {
                    user: "u".into(),
                    at_us: index,
                    snippet: snippet("text"),
                },
            );
        }
        assert_eq!((roots.by_post.len(), roots.order.len()), (3, 3));
        assert!(roots.get("p-6").is_none());
        assert_eq!(roots.get("p-9").map(|root| root.at_us), Some(9));
        assert_eq!(snippet("  one\n two  "), "one two");
        assert_eq!(snippet(&"x".repeat(100)).chars().count(), SNIPPET_CHARS + 1);
    }
}
