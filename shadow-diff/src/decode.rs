//! Removing content-encoding before comparing: two services may compress
//! differently (or not at all) and still say the same thing.

use std::io::Read;

/// Largest decoded body accepted (a defence against compression bombs).
pub const MAX_DECODED: usize = 16 << 20;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("unsupported content-encoding {0:?}")]
    Unsupported(String),
    #[error("corrupt {0} body")]
    Corrupt(&'static str),
    #[error("decoded body is larger than {MAX_DECODED} bytes")]
    TooLarge,
}

/// Decodes `body` according to a `Content-Encoding` header value (codings
/// are applied in order, so they are removed in reverse).
pub fn decode_body(content_encoding: Option<&str>, body: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let Some(header) = content_encoding else {
        return Ok(body.to_vec());
    };
    let mut data = body.to_vec();
    for coding in header.rsplit(',').map(|c| c.trim().to_ascii_lowercase()) {
        data = match coding.as_str() {
            "" | "identity" => data,
            "gzip" | "x-gzip" => read_all(flate2::read::MultiGzDecoder::new(&data[..]), "gzip")?,
            "deflate" => {
                // RFC 9110 deflate is zlib-wrapped; some servers send raw deflate.
                match read_all(flate2::read::ZlibDecoder::new(&data[..]), "deflate") {
                    Ok(d) => d,
                    Err(_) => read_all(flate2::read::DeflateDecoder::new(&data[..]), "deflate")?,
                }
            }
            "br" => read_all(brotli::Decompressor::new(&data[..], 4096), "br")?,
            "zstd" => read_all(
                zstd::stream::read::Decoder::new(&data[..])
                    .map_err(|_| DecodeError::Corrupt("zstd"))?,
                "zstd",
            )?,
            other => return Err(DecodeError::Unsupported(other.to_string())),
        };
    }
    Ok(data)
}

fn read_all(reader: impl Read, name: &'static str) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    let n = reader
        .take(MAX_DECODED as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| DecodeError::Corrupt(name))?;
    if n > MAX_DECODED {
        return Err(DecodeError::TooLarge);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn gzip_deflate_br_and_layers() {
        let text = b"{\"hello\": \"world\"}".repeat(50);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&text).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(decode_body(Some("gzip"), &gz).unwrap(), text);

        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&text).unwrap();
        assert_eq!(
            decode_body(Some("deflate"), &z.finish().unwrap()).unwrap(),
            text
        );

        let mut br = Vec::new();
        brotli::CompressorWriter::new(&mut br, 4096, 5, 22)
            .write_all(&text)
            .unwrap();
        assert_eq!(decode_body(Some("br"), &br).unwrap(), text);

        let mut twice = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        twice.write_all(&gz).unwrap();
        assert_eq!(
            decode_body(Some("gzip, gzip"), &twice.finish().unwrap()).unwrap(),
            text
        );
    }

    #[test]
    fn errors() {
        assert_eq!(
            decode_body(Some("gzip"), b"nope"),
            Err(DecodeError::Corrupt("gzip"))
        );
        assert!(matches!(
            decode_body(Some("compress"), b"x"),
            Err(DecodeError::Unsupported(_))
        ));
        assert_eq!(decode_body(None, b"plain").unwrap(), b"plain");
    }
}
