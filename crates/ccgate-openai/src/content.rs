//! OpenAI message content (string or parts) → Anthropic content blocks (docs/protocols.md §2.3, §4.2
//! steps 7–9).

use crate::error::TranslateError;
use crate::input::{Content, Got, Part, Raw, RawText, Typed, J};
use crate::json::{field, opt_cache_control, wrong_type};
use crate::output::{Block, ImageSource, Text};

/// Which part types a message role may carry. OpenAI allows text everywhere, images and files in
/// user messages, `refusal` in assistant messages; tool results may hold text and images
/// (Anthropic `tool_result.content`, §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PartPolicy {
    System,
    User,
    Assistant,
    Tool,
}

impl PartPolicy {
    fn allows(self, kind: &str) -> bool {
        match self {
            PartPolicy::System => kind == "text",
            PartPolicy::User => matches!(kind, "text" | "image_url" | "file"),
            PartPolicy::Assistant => matches!(kind, "text" | "refusal"),
            PartPolicy::Tool => matches!(kind, "text" | "image_url"),
        }
    }

    fn role(self) -> &'static str {
        match self {
            PartPolicy::System => "system",
            PartPolicy::User => "user",
            PartPolicy::Assistant => "assistant",
            PartPolicy::Tool => "tool",
        }
    }
}

/// Image media types Anthropic accepts (§2.3); anything else → 400 (§4.2 step 7).
const IMAGE_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];

/// A text block, or nothing when the text is empty or whitespace-only: Anthropic rejects those
/// (§2.9), and they carry nothing (§4.2 step 9).
pub(crate) fn text_block<'r>(
    text: RawText<'r>,
    cache_control: Option<Raw<'r>>,
) -> Option<Block<'r>> {
    if text.is_blank() {
        return None;
    }
    Some(Block::Text {
        text: Text::Raw(text),
        cache_control,
    })
}

/// Converts one message's `content` into blocks, dropping empty text. `null` or a missing content
/// must be handled by the caller (its meaning depends on the role).
pub(crate) fn convert<'r>(
    content: &'r Content<'_>,
    param: &str,
    policy: PartPolicy,
    max_image_bytes: usize,
) -> Result<Vec<Block<'r>>, TranslateError> {
    match content {
        Content::Str(s) => Ok(text_block(*s, None).into_iter().collect()),
        Content::Parts(parts) => {
            let mut out = Vec::with_capacity(parts.len());
            for (i, part) in parts.iter().enumerate() {
                if let Some(block) = convert_part(part, param, i, policy, max_image_bytes)? {
                    out.push(block);
                }
            }
            Ok(out)
        }
        other => Err(TranslateError::invalid(
            param,
            format!(
                "Invalid type for '{param}': expected a string or an array of content parts, got {}",
                other.type_name()
            ),
        )),
    }
}

/// Part `i` of the content at `content_param`.
pub(crate) fn convert_part<'r>(
    part: &'r Got<Part<'_>>,
    content_param: &str,
    i: usize,
    policy: PartPolicy,
    max_image_bytes: usize,
) -> Result<Option<Block<'r>>, TranslateError> {
    let param = &format!("{content_param}[{i}]");
    let Got::Ok(obj) = part else {
        return Err(wrong_type(param, "an object", part));
    };
    let kind = match &obj.kind {
        Some(J::Str(k)) => k.as_ref(),
        Some(other) => return Err(wrong_type(&format!("{param}.type"), "a string", other)),
        None => {
            return Err(TranslateError::invalid(
                format!("{param}.type"),
                format!("Missing required parameter: '{param}.type'"),
            ))
        }
    };
    if !policy.allows(kind) {
        return Err(TranslateError::invalid(
            format!("{param}.type"),
            format!(
                "Unsupported content part type '{kind}' in a {} message",
                policy.role()
            ),
        ));
    }
    let cache_control = opt_cache_control(obj.cache_control.as_ref(), param)?;
    match kind {
        "text" | "refusal" => {
            let value = if kind == "text" {
                &obj.text
            } else {
                &obj.refusal
            };
            let text = match value {
                Some(r) if RawText::new(*r).is_some() => RawText::new(*r).expect("a string"),
                Some(other) => {
                    return Err(wrong_type(&format!("{param}.{kind}"), "a string", other))
                }
                None => {
                    return Err(TranslateError::invalid(
                        format!("{param}.{kind}"),
                        format!("Missing required parameter: '{param}.{kind}'"),
                    ))
                }
            };
            Ok(text_block(text, cache_control))
        }
        "image_url" => image_part(obj, param, max_image_bytes, cache_control).map(Some),
        "file" => file_part(obj, param, cache_control).map(Some),
        // `allows` admitted nothing else.
        _ => Err(TranslateError::invalid(
            format!("{param}.type"),
            format!("Unsupported content part type '{kind}'"),
        )),
    }
}

/// A parsed `data:<mime>[;…];base64,<data>` URL.
struct DataUrl<'a> {
    mime: String,
    data: &'a str,
}

fn parse_data_url<'a>(url: &'a str, param: &str) -> Result<DataUrl<'a>, TranslateError> {
    let rest = &url[5..];
    let Some((meta, data)) = rest.split_once(',') else {
        return Err(TranslateError::invalid(
            param,
            format!("Invalid data URL in '{param}': missing ','"),
        ));
    };
    let mut fields = meta.split(';');
    let mime = fields.next().unwrap_or("").trim().to_ascii_lowercase();
    if !fields.any(|f| f.trim().eq_ignore_ascii_case("base64")) {
        return Err(TranslateError::invalid(
            param,
            format!("Invalid data URL in '{param}': only base64 data URLs are supported"),
        ));
    }
    if data.trim().is_empty() {
        return Err(TranslateError::invalid(
            param,
            format!("Invalid data URL in '{param}': no data"),
        ));
    }
    Ok(DataUrl { mime, data })
}

/// Decoded size of base64 text without decoding it (padding and whitespace excluded).
fn decoded_len(b64: &str) -> usize {
    let significant = b64
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b'=')
        .count();
    significant / 4 * 3 + (significant % 4).saturating_sub(1)
}

/// `image_url` part → `image` block (§4.2 step 7). Data URLs become base64 sources; http(s) URLs
/// become URL sources that Anthropic fetches: CCGate never downloads (SSRF, latency). `detail` has
/// no Anthropic equivalent and is dropped.
fn image_part<'r>(
    obj: &'r Part<'_>,
    param: &str,
    max_image_bytes: usize,
    cache_control: Option<Raw<'r>>,
) -> Result<Block<'r>, TranslateError> {
    let url_param = format!("{param}.image_url.url");
    // Some clients send `image_url` as a bare string instead of `{url}`.
    let url = match field(obj.image_url.as_ref()) {
        Some(J::Str(s)) => s.as_ref(),
        Some(J::Obj(o)) => match field(o.get("url")) {
            Some(J::Str(s)) => s.as_ref(),
            Some(other) => return Err(wrong_type(&url_param, "a string", other)),
            None => {
                return Err(TranslateError::invalid(
                    &url_param,
                    format!("Missing required parameter: '{url_param}'"),
                ))
            }
        },
        Some(other) => {
            return Err(wrong_type(
                &format!("{param}.image_url"),
                "an object",
                other,
            ))
        }
        None => {
            return Err(TranslateError::invalid(
                format!("{param}.image_url"),
                format!("Missing required parameter: '{param}.image_url'"),
            ))
        }
    };
    let url = url.trim();
    let scheme = url.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
    let source = match scheme.as_deref() {
        Some("data") => {
            let d = parse_data_url(url, &url_param)?;
            let mime = if d.mime == "image/jpg" {
                "image/jpeg"
            } else {
                d.mime.as_str()
            };
            let Some(media_type) = IMAGE_TYPES.iter().find(|t| **t == mime) else {
                return Err(TranslateError::invalid(
                    &url_param,
                    format!(
                        "Unsupported image type '{mime}' in '{url_param}': use image/jpeg, image/png, image/gif or image/webp"
                    ),
                ));
            };
            let size = decoded_len(d.data);
            if size > max_image_bytes {
                return Err(TranslateError::invalid(
                    &url_param,
                    format!(
                        "Image in '{url_param}' is too large: {size} bytes, the limit is {max_image_bytes} bytes"
                    ),
                ));
            }
            ImageSource::Base64 {
                media_type,
                data: d.data,
            }
        }
        Some("http") | Some("https") => ImageSource::Url(url),
        _ => {
            return Err(TranslateError::invalid(
                &url_param,
                format!(
                    "Invalid image URL in '{url_param}': expected a data: URL or an http(s) URL"
                ),
            ))
        }
    };
    Ok(Block::Image {
        source,
        cache_control,
    })
}

/// `file` part → PDF `document` block (§4.2 step 8). Only inline PDF data is representable:
/// OpenAI `file_id`s refer to OpenAI's file store, which CCGate cannot read.
fn file_part<'r>(
    obj: &'r Part<'_>,
    param: &str,
    cache_control: Option<Raw<'r>>,
) -> Result<Block<'r>, TranslateError> {
    let file_param = format!("{param}.file");
    let file = match field(obj.file.as_ref()) {
        Some(J::Obj(o)) => o,
        Some(other) => return Err(wrong_type(&file_param, "an object", other)),
        None => {
            return Err(TranslateError::invalid(
                &file_param,
                format!("Missing required parameter: '{file_param}'"),
            ))
        }
    };
    let data_param = format!("{file_param}.file_data");
    let data =
        match field(file.get("file_data")) {
            Some(J::Str(s)) => s.trim(),
            Some(other) => return Err(wrong_type(&data_param, "a string", other)),
            None if field(file.get("file_id")).is_some() => return Err(TranslateError::invalid(
                format!("{file_param}.file_id"),
                "File references (file_id) are not supported; send the file inline as file_data",
            )),
            None => {
                return Err(TranslateError::invalid(
                    &data_param,
                    format!("Missing required parameter: '{data_param}'"),
                ))
            }
        };
    let is_data_url = data
        .get(..5)
        .is_some_and(|p| p.eq_ignore_ascii_case("data:"));
    let b64 = if is_data_url {
        let d = parse_data_url(data, &data_param)?;
        if d.mime != "application/pdf" {
            return Err(TranslateError::invalid(
                &data_param,
                format!(
                    "Unsupported file type '{}': only application/pdf is supported",
                    d.mime
                ),
            ));
        }
        d.data
    } else {
        // Bare base64: accept it when it is recognisably a PDF ("%PDF" encodes to "JVBER") or
        // named *.pdf.
        let named_pdf = matches!(field(file.get("filename")), Some(J::Str(n)) if n.to_ascii_lowercase().ends_with(".pdf"));
        if data.is_empty() || !(data.starts_with("JVBER") || named_pdf) {
            return Err(TranslateError::invalid(
                &data_param,
                "Unsupported file: file_data must be a PDF as a data URL (data:application/pdf;base64,…)",
            ));
        }
        data
    };
    Ok(Block::Document {
        data: b64,
        cache_control,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// The content view of `v` (leaked: test only).
    fn content(v: &Value) -> &'static Content<'static> {
        let text: &'static str = Box::leak(v.to_string().into_boxed_str());
        Box::leak(Box::new(serde_json::from_str(text).unwrap()))
    }

    fn convert_value(
        v: &Value,
        param: &str,
        policy: PartPolicy,
        max: usize,
    ) -> Result<Vec<Value>, TranslateError> {
        convert(content(v), param, policy, max).map(|blocks| {
            blocks
                .iter()
                .map(|b| serde_json::to_value(b).unwrap())
                .collect()
        })
    }

    fn user(v: Value) -> Result<Vec<Value>, TranslateError> {
        convert_value(&v, "messages[0].content", PartPolicy::User, 100)
    }

    #[test]
    fn text_and_empty() {
        assert_eq!(user(json!("")).unwrap(), Vec::<Value>::new());
        assert_eq!(user(json!("  \n")).unwrap(), Vec::<Value>::new());
        assert_eq!(
            user(json!([{"type":"text","text":""},{"type":"text","text":"hi","cache_control":{"type":"ephemeral"}}]))
                .unwrap(),
            vec![json!({"type":"text","text":"hi","cache_control":{"type":"ephemeral"}})]
        );
    }

    #[test]
    fn images() {
        let b = user(json!([{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo=","detail":"high"}}]))
            .unwrap();
        assert_eq!(
            b,
            vec![
                json!({"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}})
            ]
        );
        let b =
            user(json!([{"type":"image_url","image_url":{"url":"https://e.com/a.jpg"}}])).unwrap();
        assert_eq!(
            b,
            vec![json!({"type":"image","source":{"type":"url","url":"https://e.com/a.jpg"}})]
        );
        let b =
            user(json!([{"type":"image_url","image_url":"data:image/jpg;base64,AAAA"}])).unwrap();
        assert_eq!(b[0]["source"]["media_type"], "image/jpeg");
        let e =
            user(json!([{"type":"image_url","image_url":{"url":"data:image/bmp;base64,AAAA"}}]))
                .unwrap_err();
        assert!(e.message.contains("image/bmp"));
        assert_eq!(
            e.param.as_deref(),
            Some("messages[0].content[0].image_url.url")
        );
        let big = format!("data:image/png;base64,{}", "A".repeat(200));
        let e = user(json!([{"type":"image_url","image_url":{"url":big}}])).unwrap_err();
        assert!(e.message.contains("too large"));
        assert!(user(json!([{"type":"image_url","image_url":{"url":"ftp://x"}}])).is_err());
        assert!(
            user(json!([{"type":"image_url","image_url":{"url":"data:image/png,xyz"}}])).is_err()
        );
    }

    #[test]
    fn decoded_length() {
        assert_eq!(decoded_len("AAAA"), 3);
        assert_eq!(decoded_len("AAA="), 2);
        assert_eq!(decoded_len("AA=="), 1);
        assert_eq!(decoded_len("AAAAAA=="), 4);
    }

    #[test]
    fn pdf_files() {
        let b = user(json!([{"type":"file","file":{"file_data":"data:application/pdf;base64,JVBERi0=","filename":"a.pdf"}}]))
            .unwrap();
        assert_eq!(
            b,
            vec![
                json!({"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBERi0="}})
            ]
        );
        assert!(user(json!([{"type":"file","file":{"file_data":"JVBERi0="}}])).is_ok());
        assert!(user(json!([{"type":"file","file":{"file_id":"file-1"}}])).is_err());
        assert!(
            user(json!([{"type":"file","file":{"file_data":"data:text/plain;base64,aGk="}}]))
                .is_err()
        );
    }

    #[test]
    fn unsupported_and_wrong_types() {
        let e = user(json!([{"type":"input_audio","input_audio":{}}])).unwrap_err();
        assert!(e.message.contains("input_audio"));
        assert!(user(json!(5)).is_err());
        assert!(user(json!([5])).is_err());
        assert!(user(json!([{"text":"x"}])).is_err());
        assert!(user(json!([{"type":"text"}])).is_err());
        assert!(convert_value(
            &json!([{"type":"image_url","image_url":{"url":"https://x"}}]),
            "p",
            PartPolicy::System,
            1
        )
        .is_err());
        assert!(convert_value(
            &json!([{"type":"refusal","refusal":"no"}]),
            "p",
            PartPolicy::Assistant,
            1
        )
        .is_ok());
    }
}
