//! QR codes of public page URLs: the module matrix (the `qrcode` crate), drawn as a compact SVG
//! path and as a greyscale PNG (the `png` crate).

use qrcode::{Color, EcLevel, QrCode};

/// Light modules around the code, as the QR standard asks.
pub const QUIET_ZONE: usize = 4;
/// Pixels per module in the PNG.
pub const PNG_SCALE: usize = 8;

/// The modules of a QR code, row by row; `true` is dark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrMatrix {
    pub width: usize,
    pub dark: Vec<bool>,
}

impl QrMatrix {
    /// Encodes `text` with error correction M (15 %: a poster survives some dirt).
    pub fn encode(text: &str) -> Result<QrMatrix, qrcode::types::QrError> {
        let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)?;
        let dark = code.to_colors().into_iter().map(|color| color == Color::Dark).collect();
        Ok(QrMatrix {
            width: code.width(),
            dark,
        })
    }

    fn is_dark(&self, x: usize, y: usize) -> bool {
        self.dark.get(y * self.width + x).copied().unwrap_or(false)
    }

    /// Draws the code as SVG: one path of horizontal runs (`M{x} {y}h{n}v1h-{n}z`, in module
    /// units, quiet zone included) on a white square.
    pub fn svg(&self) -> String {
        let size = self.width + 2 * QUIET_ZONE;
        let mut path = String::with_capacity(self.width * self.width * 4);
        for y in 0..self.width {
            let mut x = 0;
            while x < self.width {
                if !self.is_dark(x, y) {
                    x += 1;
                    continue;
                }
                let start = x;
                while x < self.width && self.is_dark(x, y) {
                    x += 1;
                }
                let run = x - start;
                path.push_str(&format!("M{} {}h{run}v1h-{run}z", start + QUIET_ZONE, y + QUIET_ZONE));
            }
        }
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {size} {size}\" \
             shape-rendering=\"crispEdges\" role=\"img\" aria-label=\"二维码\">\
             <rect width=\"{size}\" height=\"{size}\" fill=\"#fff\"/>\
             <path fill=\"#000\" d=\"{path}\"/></svg>"
        )
    }

    /// Draws the code as an 8-bit greyscale PNG, `PNG_SCALE` pixels per module.
    pub fn png(&self) -> Result<Vec<u8>, png::EncodingError> {
        let side = (self.width + 2 * QUIET_ZONE) * PNG_SCALE;
        let mut pixels = vec![255_u8; side * side];
        for y in 0..self.width {
            for x in 0..self.width {
                if !self.is_dark(x, y) {
                    continue;
                }
                for dy in 0..PNG_SCALE {
                    let row = (y + QUIET_ZONE) * PNG_SCALE + dy;
                    let from = row * side + (x + QUIET_ZONE) * PNG_SCALE;
                    if let Some(span) = pixels.get_mut(from..from + PNG_SCALE) {
                        span.fill(0);
                    }
                }
            }
        }
        let side = u32::try_from(side).unwrap_or(u32::MAX);
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, side, side);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&pixels)?;
        writer.finish()?;
        Ok(out)
    }
}

/// Decoding helpers shared by the tests here and the black-box tests' copy of them.
#[cfg(test)]
pub(crate) mod decode {
    use super::{PNG_SCALE, QUIET_ZONE};

    /// Decodes a greyscale or RGB(A) PNG with `rqrr`; returns every code's text.
    pub(crate) fn png(bytes: &[u8]) -> Vec<String> {
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut buffer = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buffer).unwrap();
        let channels = info.color_type.samples();
        let (width, height) = (info.width as usize, info.height as usize);
        let mut image =
            rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| buffer[(y * width + x) * channels]);
        image
            .detect_grids()
            .into_iter()
            .map(|grid| grid.decode().unwrap().1)
            .collect()
    }

    /// Reads the module grid back from the SVG path and decodes it with `rqrr`.
    pub(crate) fn svg(svg: &str) -> Vec<String> {
        let size: usize = svg
            .split("viewBox=\"0 0 ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .unwrap()
            .parse()
            .unwrap();
        let path = svg.split(" d=\"").nth(1).unwrap().split('"').next().unwrap();
        let mut dark = vec![false; size * size];
        for run in path.split('z').filter(|run| !run.is_empty()) {
            let (start, rest) = run.trim_start_matches('M').split_once('h').unwrap();
            let (x, y) = start.split_once(' ').unwrap();
            let (x, y): (usize, usize) = (x.parse().unwrap(), y.parse().unwrap());
            let length: usize = rest.split('v').next().unwrap().parse().unwrap();
            for i in 0..length {
                dark[y * size + x + i] = true;
            }
        }
        assert!(size > 2 * QUIET_ZONE);
        let side = size * PNG_SCALE;
        let mut image = rqrr::PreparedImage::prepare_from_greyscale(side, side, |x, y| {
            if dark[(y / PNG_SCALE) * size + x / PNG_SCALE] {
                0
            } else {
                255
            }
        });
        image
            .detect_grids()
            .into_iter()
            .map(|grid| grid.decode().unwrap().1)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://anquan.example.cn/p/k7q2m5x9a3c8e1g4j6n0p2r5t7abcdef";

    #[test]
    fn the_png_decodes_to_the_url() {
        let png = QrMatrix::encode(URL).unwrap().png().unwrap();
        assert_eq!(decode::png(&png), vec![URL.to_owned()]);
    }

    #[test]
    fn the_svg_decodes_to_the_url_and_draws_the_same_modules() {
        let matrix = QrMatrix::encode(URL).unwrap();
        let svg = matrix.svg();
        assert_eq!(decode::svg(&svg), vec![URL.to_owned()]);
        assert!(svg.len() < 20 * 1024, "the SVG is {} bytes", svg.len());
    }
}
