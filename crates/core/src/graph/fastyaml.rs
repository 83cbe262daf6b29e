//! A fast path for parsing rendered template documents: the small YAML subset the
//! templates produce (block mappings and sequences, one-line flow collections,
//! quoted and plain scalars, comments). Anything outside it (anchors, aliases,
//! tags, block scalars, multi-line flow collections or plain scalars, tabs,
//! complex keys) returns `None` and the caller falls back to the full YAML parser.
//! Scalars resolve exactly as the full path does (YAML 1.2 core schema), and a test
//! checks both paths agree on every rendered document of the example fleet.
//!
//! Why: a 200-hospital fleet renders ~14k documents, and the general parser spent
//! ~40% of `validate`/`plan` there. It builds the graph's [`Body`] directly (no
//! `serde_json::Value` in between, whose maps hash every key).

use crate::body::Body;

struct Line<'a> {
    indent: usize,
    text: &'a str,
}

/// Parse `doc`, or `None` when it is outside the subset.
pub fn parse(doc: &str) -> Option<Body> {
    let mut lines = Vec::new();
    for raw in doc.lines() {
        if raw.contains('\t') {
            return None;
        }
        let text = raw.trim_start_matches(' ');
        let indent = raw.len() - text.len();
        let text = strip_comment(text)?.trim_end();
        if text.is_empty() || text == "---" {
            continue;
        }
        if text == "..." || text.starts_with('%') {
            return None;
        }
        lines.push(Line { indent, text });
    }
    if lines.is_empty() {
        return Some(Body::Null);
    }
    let mut p = Parser { lines, pos: 0 };
    let indent = p.lines[0].indent;
    let v = p.block(indent)?;
    (p.pos == p.lines.len()).then_some(v)
}

/// Remove a trailing comment (` #...` outside quotes); `None` if quotes do not close.
fn strip_comment(text: &str) -> Option<&str> {
    if text.starts_with('#') {
        return Some("");
    }
    let b = text.as_bytes();
    let mut i = 0;
    let mut prev_space = false;
    while i < b.len() {
        match b[i] {
            b'"' => i = skip_double(b, i)?,
            b'\'' => i = skip_single(b, i)?,
            b'#' if prev_space => return Some(&text[..i]),
            _ => {}
        }
        prev_space = b.get(i).is_some_and(|c| *c == b' ');
        i += 1;
    }
    Some(text)
}

/// Index of the closing quote of a double-quoted scalar starting at `i`.
fn skip_double(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'\\' => j += 2,
            b'"' => return Some(j),
            _ => j += 1,
        }
    }
    None
}

fn skip_single(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    while j < b.len() {
        if b[j] == b'\'' {
            if b.get(j + 1) == Some(&b'\'') {
                j += 2;
                continue;
            }
            return Some(j);
        }
        j += 1;
    }
    None
}

struct Parser<'a> {
    lines: Vec<Line<'a>>,
    pos: usize,
}

/// `key: rest` at the start of `text` (a plain or quoted key followed by `:` and a
/// space or the end), as (key, rest).
fn split_key(text: &str) -> Option<(String, &str)> {
    let b = text.as_bytes();
    let (key, after) = match b.first()? {
        b'"' => {
            let end = skip_double(b, 0)?;
            (unquote_double(&text[1..end])?, end + 1)
        }
        b'\'' => {
            let end = skip_single(b, 0)?;
            (text[1..end].replace("''", "'"), end + 1)
        }
        b'[' | b'{' | b'&' | b'*' | b'!' | b'|' | b'>' | b'?' | b'@' | b'`' | b'-' => {
            return None;
        }
        _ => {
            let idx = find_colon(text)?;
            (text[..idx].trim_end().to_string(), idx)
        }
    };
    let rest = text[after..].strip_prefix(':')?;
    if !(rest.is_empty() || rest.starts_with(' ')) {
        return None;
    }
    Some((key, rest.trim_start()))
}

/// Position of the first `:` followed by a space or the end.
fn find_colon(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    (0..b.len()).find(|&i| b[i] == b':' && (i + 1 == b.len() || b[i + 1] == b' '))
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&Line<'a>> {
        self.lines.get(self.pos)
    }

    /// A block node whose lines start at `indent`.
    fn block(&mut self, indent: usize) -> Option<Body> {
        let line = self.peek()?;
        if line.indent != indent {
            return None;
        }
        if line.text == "-" || line.text.starts_with("- ") {
            self.sequence(indent)
        } else if split_key(line.text).is_some() {
            self.mapping(indent, None)
        } else {
            // A lone scalar document.
            let v = value_inline(line.text)?;
            self.pos += 1;
            Some(v)
        }
    }

    /// Mapping entries at `indent`; `first` is an entry already split off a
    /// sequence item's line (`- key: value`).
    fn mapping(&mut self, indent: usize, first: Option<(String, &'a str)>) -> Option<Body> {
        let mut entries: Vec<(String, Body)> = Vec::new();
        if let Some((k, rest)) = first {
            let v = self.entry_value(indent, rest)?;
            entries.push((k, v));
        }
        while let Some(line) = self.peek() {
            if line.indent < indent {
                break;
            }
            if line.indent > indent {
                return None;
            }
            let (k, rest) = split_key(line.text)?;
            self.pos += 1;
            let v = self.entry_value(indent, rest)?;
            entries.push((k, v));
        }
        Some(Body::object(entries))
    }

    /// The value of `key:` at `indent` whose inline rest is `rest` (the key's line
    /// is already consumed).
    fn entry_value(&mut self, indent: usize, rest: &str) -> Option<Body> {
        if !rest.is_empty() {
            let v = value_inline(rest)?;
            // A more indented line after an inline value would be a multi-line
            // plain scalar: not in the subset.
            if self.peek().is_some_and(|l| l.indent > indent) {
                return None;
            }
            return Some(v);
        }
        match self.peek() {
            Some(l) if l.indent > indent => {
                let child = l.indent;
                self.block(child)
            }
            // `key:` followed by a sequence at the same indentation.
            Some(l) if l.indent == indent && (l.text == "-" || l.text.starts_with("- ")) => {
                self.sequence(indent)
            }
            _ => Some(Body::Null),
        }
    }

    fn sequence(&mut self, indent: usize) -> Option<Body> {
        let mut items = Vec::new();
        while let Some(line) = self.peek() {
            if line.indent != indent || !(line.text == "-" || line.text.starts_with("- ")) {
                if line.indent > indent {
                    return None;
                }
                break;
            }
            let text = line.text;
            self.pos += 1;
            let rest = text[1..].trim_start();
            if rest.is_empty() {
                return None;
            }
            let inner = indent + (text.len() - rest.len());
            let item = match split_key(rest) {
                Some((k, r)) if !rest.starts_with('{') && !rest.starts_with('[') => {
                    self.mapping(inner, Some((k, r)))?
                }
                _ => {
                    let v = value_inline(rest)?;
                    if self.peek().is_some_and(|l| l.indent > indent) {
                        return None;
                    }
                    v
                }
            };
            items.push(item);
        }
        Some(Body::Array(items.into()))
    }
}

/// A value written on one line: flow collection, quoted or plain scalar.
fn value_inline(text: &str) -> Option<Body> {
    let mut f = Flow {
        b: text.as_bytes(),
        s: text,
        i: 0,
    };
    let v = match f.b.first()? {
        b'[' | b'{' | b'"' | b'\'' => {
            let v = f.value()?;
            f.ws();
            (f.i == f.b.len()).then_some(v)?
        }
        b'&' | b'*' | b'!' | b'|' | b'>' | b'?' | b'@' | b'`' | b'%' => return None,
        _ => {
            if find_colon(text).is_some() {
                return None; // would be a nested mapping on one line
            }
            plain(text.trim_end())?
        }
    };
    Some(v)
}

fn plain(text: &str) -> Option<Body> {
    crate::graph::render::scalar(text.to_string(), yaml_rust2::scanner::TScalarStyle::Plain)
        .ok()
        .map(Body::from)
}

/// Decode a double-quoted scalar's body (YAML escapes, a superset of JSON's).
fn unquote_double(body: &str) -> Option<String> {
    if !body.contains('\\') {
        return Some(body.to_string());
    }
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = chars.next()?;
        let hex = |n: usize, chars: &mut std::str::Chars<'_>| -> Option<char> {
            let s: String = chars.by_ref().take(n).collect();
            (s.len() == n).then_some(())?;
            char::from_u32(u32::from_str_radix(&s, 16).ok()?)
        };
        out.push(match e {
            '0' => '\0',
            'a' => '\x07',
            'b' => '\x08',
            't' | '\t' => '\t',
            'n' => '\n',
            'v' => '\x0b',
            'f' => '\x0c',
            'r' => '\r',
            'e' => '\x1b',
            ' ' => ' ',
            '"' => '"',
            '/' => '/',
            '\\' => '\\',
            'N' => '\u{85}',
            '_' => '\u{a0}',
            'L' => '\u{2028}',
            'P' => '\u{2029}',
            'x' => hex(2, &mut chars)?,
            'u' => hex(4, &mut chars)?,
            'U' => hex(8, &mut chars)?,
            _ => return None,
        });
    }
    Some(out)
}

/// One-line flow collections.
struct Flow<'a> {
    b: &'a [u8],
    s: &'a str,
    i: usize,
}

impl Flow<'_> {
    fn ws(&mut self) {
        while self.b.get(self.i) == Some(&b' ') {
            self.i += 1;
        }
    }

    fn value(&mut self) -> Option<Body> {
        self.ws();
        match *self.b.get(self.i)? {
            b'{' => self.map(),
            b'[' => self.seq(),
            b'"' => {
                let end = skip_double(self.b, self.i)?;
                let v = unquote_double(&self.s[self.i + 1..end])?;
                self.i = end + 1;
                Some(Body::String(v.into()))
            }
            b'\'' => {
                let end = skip_single(self.b, self.i)?;
                let v = self.s[self.i + 1..end].replace("''", "'");
                self.i = end + 1;
                Some(Body::String(v.into()))
            }
            b'&' | b'*' | b'!' | b'|' | b'>' | b'?' | b'@' | b'`' | b'%' => None,
            _ => {
                let start = self.i;
                while let Some(&c) = self.b.get(self.i) {
                    if matches!(c, b',' | b'}' | b']') {
                        break;
                    }
                    if c == b':'
                        && matches!(
                            self.b.get(self.i + 1),
                            None | Some(b' ' | b',' | b'}' | b']')
                        )
                    {
                        break;
                    }
                    self.i += 1;
                }
                let text = self.s[start..self.i].trim_end();
                if text.is_empty() {
                    return None;
                }
                plain(text)
            }
        }
    }

    fn seq(&mut self) -> Option<Body> {
        self.i += 1;
        let mut items = Vec::new();
        loop {
            self.ws();
            if self.b.get(self.i) == Some(&b']') {
                self.i += 1;
                return Some(Body::Array(items.into()));
            }
            items.push(self.value()?);
            self.ws();
            match self.b.get(self.i)? {
                b',' => self.i += 1,
                b']' => {}
                _ => return None,
            }
        }
    }

    fn map(&mut self) -> Option<Body> {
        self.i += 1;
        let mut entries: Vec<(String, Body)> = Vec::new();
        loop {
            self.ws();
            if self.b.get(self.i) == Some(&b'}') {
                self.i += 1;
                return Some(Body::object(entries));
            }
            let key = match self.value()? {
                Body::String(s) => s.into(),
                Body::Number(n) => n.to_string(),
                Body::Bool(b) => b.to_string(),
                _ => return None,
            };
            self.ws();
            if self.b.get(self.i) != Some(&b':') {
                return None;
            }
            self.i += 1;
            self.ws();
            let v = if matches!(self.b.get(self.i), Some(b',' | b'}')) {
                Body::Null
            } else {
                self.value()?
            };
            entries.push((key, v));
            self.ws();
            match self.b.get(self.i)? {
                b',' => self.i += 1,
                b'}' => {}
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subset_parses() {
        let doc = "type: T  # comment\napiVersion: \"2024-05-01\"\nbody:\n  a: [1, 2.5, true, null, \"t\\u00e9\", 'it''s']\n  b: { c: 10.0.0.0/24, d: -3, e: {} }\n  list:\n    - name: x\n      properties: { p: 1 }\n    - plain value\n  same:\n  - 1\n  - 2\n  empty:\n";
        assert_eq!(
            parse(doc).map(Body::into_value),
            Some(json!({"type": "T", "apiVersion": "2024-05-01", "body": {
                "a": [1, 2.5, true, null, "té", "it's"],
                "b": {"c": "10.0.0.0/24", "d": -3, "e": {}},
                "list": [{"name": "x", "properties": {"p": 1}}, "plain value"],
                "same": [1, 2],
                "empty": null}}))
        );
    }

    #[test]
    fn outside_the_subset_falls_back() {
        for doc in [
            "a: &x 1\nb: *x\n",
            "a: |\n  text\n",
            "a: plain\n  continued\n",
            "a: [1,\n  2]\n",
            "a:\tb\n",
            "? [a]\n: 1\n",
            "a: !!str 1\n",
        ] {
            assert_eq!(parse(doc), None, "{doc:?}");
        }
    }
}
