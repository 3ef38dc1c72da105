//! PNG files of the charts' RGB bitmaps, through the `png` crate.

use crate::{Error, Result};

/// Encodes `rgb` (row-major, 3 bytes a pixel) of `width` x `height` pixels as a PNG file.
pub(crate) fn encode_rgb(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>> {
    if rgb.len() != width as usize * 3 * height as usize || width == 0 || height == 0 {
        return Err(Error::Plot(format!(
            "png: {} bytes do not make a {width}x{height} RGB image",
            rgb.len()
        )));
    }
    let err = |e: ::png::EncodingError| Error::Plot(format!("png: {e}"));
    let mut out = Vec::new();
    let mut encoder = ::png::Encoder::new(&mut out, width, height);
    encoder.set_color(::png::ColorType::Rgb);
    encoder.set_depth(::png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(err)?;
    writer.write_image_data(rgb).map_err(err)?;
    writer.finish().map_err(err)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plot_png_round_trip() {
        let (w, h) = (3u32, 2u32);
        let rgb: Vec<u8> = (0..w * h * 3).map(|i| (i * 13) as u8).collect();
        let png = encode_rgb(&rgb, w, h).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&png[12..16], b"IHDR");
        // The last chunk is IEND, whose CRC is the well-known AE 42 60 82.
        assert_eq!(&png[png.len() - 12..], b"\0\0\0\0IEND\xae\x42\x60\x82");
        let mut reader = ::png::Decoder::new(std::io::Cursor::new(&png))
            .read_info()
            .unwrap();
        let mut back = vec![0u8; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut back).unwrap();
        assert_eq!((info.width, info.height), (w, h));
        assert_eq!(info.color_type, ::png::ColorType::Rgb);
        assert_eq!(&back[..info.buffer_size()], &rgb[..]);
        assert!(encode_rgb(&rgb, 4, 2).is_err());
    }
}
