//! A minimal PNG encoder (8-bit RGB, no interlace) on flate2, so charts need no image crate.

use std::io::Write;

use flate2::write::ZlibEncoder;
use flate2::Compression;

use crate::{Error, Result};

/// The CRC-32 (IEEE, reflected) PNG uses for its chunks.
fn crc32(parts: &[&[u8]]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (n, e) in t.iter_mut().enumerate() {
            let mut c = n as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *e = c;
        }
        t
    });
    let mut c = 0xFFFF_FFFFu32;
    for part in parts {
        for &b in *part {
            c = table[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8);
        }
    }
    c ^ 0xFFFF_FFFF
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc32(&[kind, data]).to_be_bytes());
}

/// Encodes `rgb` (row-major, 3 bytes a pixel) of `width` x `height` pixels as a PNG file.
pub(crate) fn encode_rgb(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>> {
    let row = width as usize * 3;
    if rgb.len() != row * height as usize || width == 0 || height == 0 {
        return Err(Error::Plot(format!(
            "png: {} bytes do not make a {width}x{height} RGB image",
            rgb.len()
        )));
    }
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    // bit depth 8, colour type 2 (RGB), deflate, adaptive filtering, no interlace
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
    let mut prev: Option<&[u8]> = None;
    let mut line = vec![0u8; row + 1];
    for cur in rgb.chunks_exact(row) {
        // Filter 2 (Up) where there is a row above: flat chart backgrounds become zeros.
        match prev {
            None => {
                line[0] = 0;
                line[1..].copy_from_slice(cur);
            }
            Some(up) => {
                line[0] = 2;
                for ((d, &c), &u) in line[1..].iter_mut().zip(cur).zip(up) {
                    *d = c.wrapping_sub(u);
                }
            }
        }
        z.write_all(&line)
            .map_err(|e| Error::Plot(format!("png: {e}")))?;
        prev = Some(cur);
    }
    let idat = z.finish().map_err(|e| Error::Plot(format!("png: {e}")))?;
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &idat);
    chunk(&mut out, b"IEND", &[]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn plot_png_crc_and_round_trip() {
        // The CRC of "IEND" with no data is the well-known AE 42 60 82.
        assert_eq!(crc32(&[b"IEND"]), 0xAE42_6082);
        assert_eq!(crc32(&[b"123456789"]), 0xCBF4_3926);
        let (w, h) = (3u32, 2u32);
        let rgb: Vec<u8> = (0..w * h * 3).map(|i| (i * 13) as u8).collect();
        let png = encode_rgb(&rgb, w, h).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&png[12..16], b"IHDR");
        assert_eq!(&png[png.len() - 8..png.len() - 4], b"IEND");
        // Undo the zlib and the Up filter: the pixels come back.
        let idat_len = u32::from_be_bytes(png[33..37].try_into().unwrap()) as usize;
        assert_eq!(&png[37..41], b"IDAT");
        let mut raw = Vec::new();
        flate2::read::ZlibDecoder::new(&png[41..41 + idat_len])
            .read_to_end(&mut raw)
            .unwrap();
        let row = (w * 3) as usize;
        let mut back: Vec<u8> = Vec::new();
        for (r, line) in raw.chunks(row + 1).enumerate() {
            let prev: Vec<u8> = if r == 0 {
                vec![0; row]
            } else {
                back[(r - 1) * row..r * row].to_vec()
            };
            for (k, &b) in line[1..].iter().enumerate() {
                back.push(if line[0] == 2 {
                    b.wrapping_add(prev[k])
                } else {
                    b
                });
            }
        }
        assert_eq!(back, rgb);
        assert!(encode_rgb(&rgb, 4, 2).is_err());
    }
}
