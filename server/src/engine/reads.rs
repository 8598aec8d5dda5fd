//! Which parts of `input` a bundle's Rego can read, found from its tokens.
//!
//! Replay uses it to tell whether a decision could depend on a value the
//! audit log redacted. The answer must never be "no" when it is "yes", so it
//! errs towards reading: a reference is followed only through `.name` and
//! `["name"]`; wherever it stops (a variable key, a function argument, an
//! assignment, `import input...`), everything under the path so far counts
//! as read. Every module counts, reachable from the entrypoint or not.

use regorus::unstable::{Lexer, Source, TokenKind};

use crate::bundle::RegoModule;

/// The `input` paths a policy reads, each with everything beneath it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InputReads {
    prefixes: Vec<Vec<String>>,
}

impl InputReads {
    /// What `modules` read; `None` when nothing can be told: a bundle
    /// without Rego (a shipped `policy.wasm` alone), or one the lexer
    /// cannot read.
    pub fn of(modules: &[RegoModule]) -> Option<Self> {
        if modules.is_empty() {
            return None;
        }
        let mut prefixes = Vec::new();
        for module in modules {
            if let Err(message) = scan(module, &mut prefixes) {
                tracing::debug!(
                    path = module.path,
                    message,
                    "cannot tell what a module reads"
                );
                return None;
            }
        }
        prefixes.sort();
        prefixes.dedup();
        Some(Self { prefixes })
    }

    /// Whether a decision can depend on the value at `path` (`context.prompt`):
    /// some read reaches into it, or takes a whole object it lies in.
    pub fn reads(&self, path: &str) -> bool {
        let path: Vec<&str> = path.split('.').collect();
        self.prefixes.iter().any(|prefix| {
            prefix
                .iter()
                .zip(&path)
                .all(|(read, segment)| read == segment)
        })
    }
}

fn scan(module: &RegoModule, prefixes: &mut Vec<Vec<String>>) -> Result<(), String> {
    let source = Source::from_contents(module.path.clone(), module.source.clone())
        .map_err(|e| e.to_string())?;
    let mut lexer = Lexer::new(&source);
    let mut tokens = Vec::new();
    loop {
        let token = lexer.next_token().map_err(|e| e.to_string())?;
        if matches!(token.0, TokenKind::Eof) {
            break;
        }
        tokens.push((token.0, token.1.text().to_owned()));
    }
    for (at, (kind, text)) in tokens.iter().enumerate() {
        let root = matches!(kind, TokenKind::Ident) && text == "input";
        // `x.input` is a field called input, not the document; `with input
        // as …` replaces the document rather than reading it.
        let before = at.checked_sub(1).and_then(|before| tokens.get(before));
        let after_dot =
            before.is_some_and(|(kind, text)| matches!(kind, TokenKind::Symbol) && text == ".");
        let replaced =
            before.is_some_and(|(kind, text)| matches!(kind, TokenKind::Ident) && text == "with");
        if root && !after_dot && !replaced {
            let (mut path, used) = reference(&tokens[at + 1..]);
            // `object.get(input.a, "b", default)` reads `a.b` only.
            if let Some(key) = object_get_key(&tokens[..at], &tokens[at + 1 + used..]) {
                path.push(key);
            }
            prefixes.push(path);
        }
    }
    Ok(())
}

/// The key of `object.get(<reference>, "key", …)` around a reference, when
/// `before` ends with `object.get(` and `after` starts with `, "key",`.
fn object_get_key(before: &[(TokenKind, String)], after: &[(TokenKind, String)]) -> Option<String> {
    let texts = |tokens: &[(TokenKind, String)]| -> Vec<String> {
        tokens.iter().map(|(_, text)| text.clone()).collect()
    };
    let opening = before
        .len()
        .checked_sub(4)
        .map(|start| texts(&before[start..]))?;
    if opening != ["object", ".", "get", "("] {
        return None;
    }
    match after {
        [
            (TokenKind::Symbol, comma),
            (TokenKind::String | TokenKind::RawString, key),
            (TokenKind::Symbol, next),
            ..,
        ] if comma == "," && next == "," => plain(key),
        _ => None,
    }
}

/// The static part of a reference and how many tokens it took: `.a["b"].c`
/// → `[a, b, c]`, stopping at the first segment that is not a plain name.
fn reference(tokens: &[(TokenKind, String)]) -> (Vec<String>, usize) {
    let mut path = Vec::new();
    let mut at = 0;
    loop {
        let symbol = |i: usize, want: &str| {
            tokens
                .get(i)
                .is_some_and(|(kind, text)| matches!(kind, TokenKind::Symbol) && text == want)
        };
        if symbol(at, ".")
            && let Some((TokenKind::Ident, name)) = tokens.get(at + 1)
        {
            path.push(name.clone());
            at += 2;
        } else if symbol(at, "[")
            && symbol(at + 2, "]")
            && let Some((TokenKind::String | TokenKind::RawString, name)) = tokens.get(at + 1)
            && let Some(name) = plain(name)
        {
            path.push(name);
            at += 3;
        } else {
            return (path, at);
        }
    }
}

/// A string key without escapes, quotes stripped; an escaped one is not
/// decoded (and so ends the reference: more is read, not less).
fn plain(token: &str) -> Option<String> {
    let inner = token
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .or_else(|| token.strip_prefix('`').and_then(|t| t.strip_suffix('`')))
        .unwrap_or(token);
    (!inner.contains('\\')).then(|| inner.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reads(source: &str) -> InputReads {
        let module = RegoModule {
            path: "p.rego".into(),
            source: source.into(),
            rego_v0: false,
        };
        InputReads::of(&[module]).unwrap_or_default()
    }

    #[test]
    fn follows_static_references_only() {
        let policy = reads(
            r#"package p
            # input.context.secret in a comment is not a read
            allow if input.context.ip == "10.0.0.1"
            allow if input["action"]["attributes"].amount > 3
            s := "input.context.prompt"
            x := data.input.context.other
            test_it if allow with input as {"context": {"prompt": 1}}
            "#,
        );
        assert!(policy.reads("context.ip"));
        assert!(policy.reads("action.attributes.amount"));
        // Reaching into a read value is reading it.
        assert!(policy.reads("context.ip.v4"));
        assert!(!policy.reads("context.prompt"));
        assert!(!policy.reads("context.other"));
        assert!(!policy.reads("action.attributes.card"));
    }

    #[test]
    fn where_a_reference_stops_everything_beneath_is_read() {
        for (source, read, unread) in [
            (
                "allow if { some k; input.context[k] == 1 }",
                "context.prompt",
                "action.name",
            ),
            (
                "c := input.context\nallow if c.prompt",
                "context.prompt",
                "action.name",
            ),
            (
                "allow if count(input.action.attributes) > 1",
                "action.attributes.card",
                "context.x",
            ),
            (
                "import input.context\nallow if context.prompt",
                "context.prompt",
                "agent.id",
            ),
            ("allow if json.marshal(input) != \"\"", "context.prompt", ""),
            (
                "n := count(object.get(input, \"audience\", []))",
                "audience",
                "context.prompt",
            ),
            (
                "n := object.get(input.context, \"ip\", \"\")",
                "context.ip.v4",
                "context.prompt",
            ),
            (
                "n := object.get(input.context, [\"a\"], 1)",
                "context.prompt",
                "",
            ),
            ("allow if input[\"con\\ttext\"].x", "context.prompt", ""),
        ] {
            let policy = reads(&format!("package p\n{source}\n"));
            assert!(policy.reads(read), "{source}: {read}");
            if !unread.is_empty() {
                assert!(!policy.reads(unread), "{source}: {unread}");
            }
        }
    }

    #[test]
    fn a_bundle_without_rego_tells_nothing() {
        assert_eq!(InputReads::of(&[]), None);
    }
}
