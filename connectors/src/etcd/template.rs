//! `key_template`: the layout of a key below the prefix, parsed once and matched against
//! every key to learn its service, version and id, or rendered for an instance the
//! writer puts; and [`Layout`], a source's prefix, format and template together.

/// One `/`-separated piece of a key below the prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Segment {
    Literal(String),
    Service,
    Version,
    Id,
}

/// A parsed `key_template`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct KeyTemplate {
    segments: Vec<Segment>,
}

/// What a key says about its instance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct KeyParts {
    pub service: Option<String>,
    pub version: Option<String>,
    pub id: Option<String>,
}

impl KeyTemplate {
    pub(super) fn parse(template: &str) -> Result<Self, String> {
        let trimmed = template.trim_matches('/');
        if trimmed.is_empty() {
            return Err("must not be empty".to_owned());
        }
        let mut segments = Vec::new();
        for piece in trimmed.split('/') {
            let segment = match piece {
                "" => return Err(format!("`{template}` has an empty segment (`//`)")),
                "{service}" => Segment::Service,
                "{version}" => Segment::Version,
                "{id}" => Segment::Id,
                other if other.contains(['{', '}']) => {
                    return Err(format!(
                        "`{template}`: `{other}` is not a placeholder; use whole segments \
                         {{service}}, {{version}} or {{id}}"
                    ))
                }
                other => Segment::Literal(other.to_owned()),
            };
            if !matches!(segment, Segment::Literal(_)) && segments.contains(&segment) {
                return Err(format!("`{template}` repeats `{piece}`"));
            }
            segments.push(segment);
        }
        Ok(KeyTemplate { segments })
    }

    pub(super) fn has(&self, segment: Segment) -> bool {
        self.segments.contains(&segment)
    }

    /// The part of a key below the prefix holding `parts`: what [`KeyTemplate::matches`]
    /// reads back as the same parts. Fails naming the placeholder that `parts` cannot fill
    /// (missing, empty, or holding a `/` that would change the key's shape).
    pub(super) fn render(&self, parts: &KeyParts) -> Result<String, String> {
        let mut pieces = Vec::with_capacity(self.segments.len());
        for segment in &self.segments {
            let (placeholder, value) = match segment {
                Segment::Literal(literal) => {
                    pieces.push(literal.as_str());
                    continue;
                }
                Segment::Service => ("{service}", &parts.service),
                Segment::Version => ("{version}", &parts.version),
                Segment::Id => ("{id}", &parts.id),
            };
            match value.as_deref() {
                None | Some("") => return Err(format!("`{placeholder}` has no value")),
                Some(value) if value.contains('/') => {
                    return Err(format!(
                        "`{placeholder}` would be `{value}`, which holds a `/`"
                    ))
                }
                Some(value) => pieces.push(value),
            }
        }
        Ok(pieces.join("/"))
    }

    /// Matches the part of a key below the prefix; `None` when the shapes differ.
    pub(super) fn matches(&self, rest: &str) -> Option<KeyParts> {
        let pieces: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
        if pieces.len() != self.segments.len() {
            return None;
        }
        let mut parts = KeyParts::default();
        for (segment, piece) in self.segments.iter().zip(pieces) {
            if piece.is_empty() {
                return None;
            }
            match segment {
                Segment::Literal(literal) if literal != piece => return None,
                Segment::Literal(_) => {}
                Segment::Service => parts.service = Some(piece.to_owned()),
                Segment::Version => parts.version = Some(piece.to_owned()),
                Segment::Id => parts.id = Some(piece.to_owned()),
            }
        }
        Some(parts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_keys() {
        let template = KeyTemplate::parse("{service}/{version}/{id}").unwrap();
        assert_eq!(
            template.matches("user/1.0.0/abc"),
            Some(KeyParts {
                service: Some("user".into()),
                version: Some("1.0.0".into()),
                id: Some("abc".into()),
            })
        );
        assert_eq!(template.matches("user/abc"), None);
        assert_eq!(template.matches("user//abc"), None);
        let literal = KeyTemplate::parse("/{service}/instances/{id}/").unwrap();
        assert!(literal.matches("a/instances/b").is_some());
        assert!(literal.matches("a/nodes/b").is_none());
        let bare = KeyTemplate::parse("{service}").unwrap();
        assert_eq!(
            bare.matches("notification-server")
                .unwrap()
                .service
                .as_deref(),
            Some("notification-server")
        );
    }

    #[test]
    fn rendered_keys_match_back() {
        let template = KeyTemplate::parse("/{service}/instances/{version}/{id}/").unwrap();
        let parts = KeyParts {
            service: Some("user".into()),
            version: Some("1.0.0".into()),
            id: Some("10.0.0.1:80".into()),
        };
        let rendered = template.render(&parts).unwrap();
        assert_eq!(rendered, "user/instances/1.0.0/10.0.0.1:80");
        assert_eq!(template.matches(&rendered), Some(parts.clone()));
        for (broken, expected) in [
            (
                KeyParts {
                    version: None,
                    ..parts.clone()
                },
                "`{version}` has no value",
            ),
            (
                KeyParts {
                    id: Some(String::new()),
                    ..parts.clone()
                },
                "`{id}` has no value",
            ),
            (
                KeyParts {
                    service: Some("a/b".into()),
                    ..parts.clone()
                },
                "holds a `/`",
            ),
        ] {
            let err = template.render(&broken).unwrap_err();
            assert!(err.contains(expected), "{broken:?}: {err}");
        }
        let without_version = KeyTemplate::parse("{service}/{id}").unwrap();
        let parts = KeyParts {
            version: None,
            ..parts
        };
        assert_eq!(without_version.render(&parts).unwrap(), "user/10.0.0.1:80");
    }
}

/// Where one source's instances live in etcd and how their values are written: its
/// effective prefix, value format and parsed key template. Read by the watch's converter
/// and written by the writer's encoder, so both agree.
#[derive(Clone, Debug)]
pub(super) struct Layout {
    pub prefix: String,
    pub format: super::config::ValueFormat,
    pub template: KeyTemplate,
    /// The template as configured, for messages.
    pub template_text: String,
}

impl Layout {
    pub(super) fn new(config: &super::config::EtcdConfig) -> Result<Layout, crate::ConnectorError> {
        let template = KeyTemplate::parse(&config.key_template)
            .map_err(|why| crate::ConnectorError::Config(format!("`key_template` {why}")))?;
        Ok(Layout {
            prefix: config.effective_prefix(),
            format: config.format,
            template,
            template_text: config.key_template.clone(),
        })
    }
}
