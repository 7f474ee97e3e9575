//! How deep a YAML text nests, bounded before a parser sees it. The YAML parser spends
//! time quadratic in the depth of flow collections (`[[[[…` of 100,000 levels took 36 s
//! before it was refused), so the configuration files are checked first by this linear
//! scan, which stops at the first level beyond the limit. It tracks what makes a level
//! (block collections by their columns, `-` and `?` entries, flow `[` and `{`) and what
//! hides indicators (quoted scalars, comments, block scalars, plain scalars); it may
//! count one level more than a parser would, never fewer. Owns the limit and the scan;
//! must not parse values (serde does).

/// Levels a configuration file may nest; the deepest oomwatch reads has four.
pub const MAX_YAML_NESTING: usize = 64;

/// A text nested deeper than the limit, where the scan found it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("nested deeper than {limit} levels at line {line}")]
pub struct TooDeep {
    /// The top-level key the nesting is under, when there is one.
    pub field: Option<String>,
    pub line: usize,
    pub limit: usize,
}

/// Ok when `text` nests at most `limit` levels.
pub fn check_nesting(text: &str, limit: usize) -> Result<(), TooDeep> {
    let mut scan = Scan {
        limit,
        block: Vec::new(),
        flow: 0,
        quote: None,
        block_scalar: None,
        plain: None,
        node_start: false,
        field: None,
        line: 0,
    };
    for (index, line) in text.split('\n').enumerate() {
        scan.line = index + 1;
        scan.scan_line(line.trim_end_matches('\r').as_bytes())?;
    }
    Ok(())
}

/// Where the lines of a block scalar (`|`, `>`) end.
#[derive(Debug, Clone, Copy)]
enum BlockScalar {
    /// Before its first line of text, which sets its indentation: at least this, the
    /// most any leading blank line had.
    Detecting(usize),
    /// Lines indented at least this much (and blank lines) are its text.
    Text(usize),
}

struct Scan {
    limit: usize,
    /// The block collections the current line is inside: their columns, and whether each
    /// is a sequence (one may sit at its mapping's column: `key:` then `- item`).
    block: Vec<(usize, bool)>,
    /// Open flow collections.
    flow: usize,
    /// The quote of a quoted scalar that goes on past the end of a line.
    quote: Option<u8>,
    block_scalar: Option<BlockScalar>,
    /// A plain scalar in block context is open: a line indented at least this much goes
    /// on with it (its text is no node, and a quote in it opens nothing).
    plain: Option<usize>,
    /// A node may start here: a quote opens a quoted scalar, a `[` or `{` a collection.
    node_start: bool,
    /// The current top-level key.
    field: Option<String>,
    line: usize,
}

impl Scan {
    fn scan_line(&mut self, line: &[u8]) -> Result<(), TooDeep> {
        let indent = line.iter().take_while(|&&b| b == b' ').count();
        let rest = &line[indent..];
        let blank = rest.iter().all(|b| b.is_ascii_whitespace());
        if self.in_block_scalar(indent, blank) {
            return Ok(());
        }
        if self.quote.is_some() || self.flow > 0 {
            return self.scan_tokens(line, 0);
        }
        if blank {
            return Ok(());
        }
        if self.plain.is_some_and(|least| indent >= least) && rest[0] != b'#' {
            // The open plain scalar goes on.
            return self.scan_tokens(line, indent);
        }
        self.plain = None;
        if rest[0] == b'#' {
            return Ok(());
        }
        let marker = rest.starts_with(b"---") || rest.starts_with(b"...");
        if indent == 0 && marker && rest.get(3).is_none_or(|b| b.is_ascii_whitespace()) {
            // A document marker: a new document starts at the top.
            self.block.clear();
            self.node_start = true;
            return self.scan_tokens(line, 3);
        }
        let entry = rest[0] == b'-' && rest.get(1).is_none_or(|b| matches!(b, b' ' | b'\t'));
        self.close_blocks(indent, entry);
        if indent == 0 && !entry {
            self.field = top_level_key(rest);
        }
        self.open_block(indent, entry)?;
        self.node_start = true;
        self.scan_tokens(line, indent)
    }

    /// True when a line of this indentation is text of the block scalar being read. As the
    /// parser does, the leading lines (blank ones too) set the text's indentation.
    fn in_block_scalar(&mut self, indent: usize, blank: bool) -> bool {
        let next = match self.block_scalar {
            None => return false,
            Some(BlockScalar::Detecting(least)) if blank => {
                Some(BlockScalar::Detecting(least.max(indent)))
            }
            Some(BlockScalar::Detecting(least)) if indent >= least => {
                Some(BlockScalar::Text(indent))
            }
            Some(text @ BlockScalar::Text(least)) if blank || indent >= least => Some(text),
            Some(_) => None,
        };
        self.block_scalar = next;
        next.is_some()
    }

    /// Scans one line from `start` for what opens and closes levels.
    fn scan_tokens(&mut self, line: &[u8], start: usize) -> Result<(), TooDeep> {
        let mut i = start;
        while i < line.len() {
            if let Some(quote) = self.quote {
                i = self.close_quote(line, i, quote);
                continue;
            }
            let spaced = |at: usize| line.get(at).is_none_or(|b| matches!(b, b' ' | b'\t'));
            match line[i] {
                b' ' | b'\t' => {}
                b'#' if i == 0 || spaced(i - 1) => {
                    // A comment ends the line, and a plain scalar with it.
                    self.plain = None;
                    return Ok(());
                }
                b'[' | b'{' if self.flow > 0 || self.node_start => {
                    self.flow += 1;
                    self.plain = None;
                    self.check()?;
                    self.node_start = true;
                }
                b']' | b'}' if self.flow > 0 => {
                    self.flow -= 1;
                    self.node_start = false;
                }
                b',' if self.flow > 0 => self.node_start = true,
                c @ (b'\'' | b'"') if self.node_start => {
                    self.quote = Some(c);
                    self.plain = None;
                }
                b'-' | b'?' if self.node_start && self.flow == 0 && spaced(i + 1) => {
                    // A block entry: the node after it is one level in.
                    if let Some(next) = (i + 1..line.len()).find(|&j| !spaced(j)) {
                        self.open_block(next, false)?;
                    }
                }
                b':' if spaced(i + 1)
                    || (self.flow > 0 && matches!(line.get(i + 1), Some(b',' | b']' | b'}'))) =>
                {
                    self.node_start = true;
                    self.plain = None;
                }
                b'|' | b'>' if self.node_start && self.flow == 0 => {
                    self.start_block_scalar(line, i);
                    return Ok(());
                }
                b'!' | b'&' if self.node_start => {
                    // A tag or an anchor: the node follows it.
                    i = (i..line.len()).find(|&j| spaced(j)).unwrap_or(line.len());
                    continue;
                }
                b'*' if self.node_start => {
                    // An alias: a whole node, never continued on the next line.
                    self.node_start = false;
                    i = (i..line.len()).find(|&j| spaced(j)).unwrap_or(line.len());
                    continue;
                }
                _ => self.plain_text(i),
            }
            i += 1;
        }
        Ok(())
    }

    /// A character of a plain scalar; at a node's start, the scalar opens.
    fn plain_text(&mut self, at: usize) {
        if self.node_start && self.flow == 0 {
            // Its lines go on while indented more than the collection it is in.
            let parent = self.parent_column(at);
            self.plain = Some(parent.map_or(0, |column| column + 1));
        }
        self.node_start = false;
    }

    /// A block scalar's header at `at`: its text is indented more than the collection it
    /// is in, or as its indentation indicator says (taken one more, so a line the parser
    /// reads as structure is never skipped).
    fn start_block_scalar(&mut self, line: &[u8], at: usize) {
        let parent = self.parent_column(at);
        let least = parent.map_or(0, |column| column + 1);
        let indicator = line[at + 1..]
            .iter()
            .take_while(|b| matches!(b, b'+' | b'-' | b'1'..=b'9'))
            .find(|b| b.is_ascii_digit())
            .map(|digit| usize::from(digit - b'0'));
        self.block_scalar = Some(match indicator {
            Some(digit) => BlockScalar::Text(least + digit),
            None => BlockScalar::Detecting(least),
        });
        self.plain = None;
    }

    /// Past the closing quote at or after `i` (`''` and `\"` do not close), or the end of
    /// the line when the scalar goes on.
    fn close_quote(&mut self, line: &[u8], mut i: usize, quote: u8) -> usize {
        while i < line.len() {
            match line[i] {
                b'\\' if quote == b'"' => i += 2,
                b'\'' if quote == b'\'' && line.get(i + 1) == Some(&b'\'') => i += 2,
                c if c == quote => {
                    self.quote = None;
                    self.node_start = false;
                    return i + 1;
                }
                _ => i += 1,
            }
        }
        line.len()
    }

    /// Leaves the block collections a line at `indent` is not inside. An entry (`- `) at
    /// a collection's own column stays inside it.
    fn close_blocks(&mut self, indent: usize, entry: bool) {
        while let Some(&(column, _)) = self.block.last() {
            if column < indent || (entry && column == indent) {
                break;
            }
            self.block.pop();
        }
    }

    /// A block collection (or entry) at `column`, inside the current ones: deeper, or a
    /// sequence at its mapping's column.
    fn open_block(&mut self, column: usize, sequence: bool) -> Result<(), TooDeep> {
        let inside = match self.block.last() {
            None => true,
            Some(&(last, last_is_sequence)) => {
                column > last || (column == last && sequence && !last_is_sequence)
            }
        };
        if inside {
            self.block.push((column, sequence));
            self.check()?;
        }
        Ok(())
    }

    /// The column of the innermost block collection that starts left of `at`.
    fn parent_column(&self, at: usize) -> Option<usize> {
        self.block
            .iter()
            .rev()
            .map(|&(column, _)| column)
            .find(|&column| column < at)
    }

    fn check(&self) -> Result<(), TooDeep> {
        if self.block.len() + self.flow > self.limit {
            return Err(TooDeep {
                field: self.field.clone(),
                line: self.line,
                limit: self.limit,
            });
        }
        Ok(())
    }
}

/// `key` of a line `key: …` at column 0, when the key is plain and short.
fn top_level_key(rest: &[u8]) -> Option<String> {
    let end = rest.windows(2).position(|w| w == b": ").or_else(|| {
        rest.ends_with(b":")
            .then(|| rest.len() - 1)
            .filter(|&end| end > 0)
    })?;
    let key = &rest[..end];
    let plain = key.len() <= 64
        && key
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    plain.then(|| String::from_utf8_lossy(key).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The depth the scan finds: the smallest limit it accepts.
    fn depth(text: &str) -> usize {
        (0..100)
            .find(|&limit| check_nesting(text, limit).is_ok())
            .expect("shallow")
    }

    #[test]
    fn configuration_files_are_shallow() {
        let files = [
            include_str!("../deploy/config/oomwatch.yml"),
            "groups:\n  - name: mysql\n    comm: '^mysqld$'\n  - name: 'java-$1'\n    cmdline: '-jar (\\S+)\\.jar'\n",
            "tls_server_config:\n  cert_file: server.crt\n  client_allowed_sans: [a.example, 10.0.0.1]\n\
             http_server_config:\n  headers:\n    X-Frame-Options: deny\n\
             basic_auth_users:\n  prometheus: $2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG\n",
        ];
        for text in files {
            assert!(depth(text) <= 4, "{} for {text}", depth(text));
        }
    }

    #[test]
    fn levels_are_counted_in_every_form() {
        assert_eq!(depth("a: 1\n"), 1);
        assert_eq!(depth("a:\n  b:\n    c: 1\n"), 3);
        assert_eq!(depth("a: [1, [2, {b: [3]}]]\n"), 5);
        assert_eq!(depth("a:\n  - b: 1\n    c: [1]\n"), 4);
        // A block entry's node counts as a level even when it is a scalar: one more
        // than a parser counts, never fewer.
        assert_eq!(depth("- - - x\n"), 4);
        assert_eq!(depth("? - k\n: v\n"), 3);
        assert_eq!(depth("a: !!seq [1]\nb: &x [[1]]\n"), 3);
        // Multi-line flow collections keep their depth across lines.
        assert_eq!(depth("a: [\n  [\n    [1]\n  ]\n]\nb: 1\n"), 4);
    }

    #[test]
    fn indicators_inside_scalars_and_comments_are_not_levels() {
        for text in [
            "a: '[[[[['\n",
            "a: \"[[[[[\\\"[[[\"\n",
            "a: 'it''s [[[['\n",
            "a: x[[[[[\n",
            "a: it's [[[[\n",
            "a: 1 # [[[[[[\n",
            "# [[[[[[\n",
            "a: |\n  [[[[[[\n  {{{{{\nb: 1\n",
            "- >-\n  [[[[[[\n",
            "a: \"multi\n  [[[[[[ line\"\n",
            "a: http://x/[y]\n",
        ] {
            assert!(depth(text) <= 2, "{} for {text:?}", depth(text));
        }
    }

    #[test]
    fn flow_that_follows_what_looks_like_a_scalar_is_still_counted() {
        // Each of these is a deep flow collection to the parser: the first three took it
        // 0.35 s to 1.5 s at 20,000 levels.
        let deep = "[".repeat(100);
        for text in [
            format!("--- {deep}"),
            format!("a: x\n  \"\nb: {deep}"),
            format!("a: x['\nb: {deep}"),
            format!("a: x\n# c\n  {deep}"),
            format!("a: *x\n  {deep}"),
            format!("a: |\n          \n  {deep}"),
            format!("a: |9\n  {deep}"),
            format!("a: 'x'\n  {deep}"),
        ] {
            assert!(check_nesting(&text, 64).is_err(), "{text:?}");
        }
        // And these are text to the parser.
        for text in [
            format!("x\n{deep}"),
            format!("a: x\n  {deep}"),
            format!("a: |\n  {deep}"),
            format!("- |\n {deep}"),
            format!("a: '{deep}'"),
        ] {
            assert!(check_nesting(&text, 64).is_ok(), "{text:?}");
        }
    }

    #[test]
    fn a_hundred_thousand_levels_are_refused_at_the_limit() {
        let n = 100_000;
        let cases = [
            (
                format!("groups: {}{}", "[".repeat(n), "]".repeat(n)),
                Some("groups"),
            ),
            (
                format!("groups: {}1{}", "{a: ".repeat(n), "}".repeat(n)),
                Some("groups"),
            ),
            (format!("{}x\n", "- ".repeat(n)), None),
            (
                // Indented keys: 1,000 levels are already half a megabyte.
                (0..1000)
                    .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
                    .collect(),
                Some("k0"),
            ),
        ];
        for (text, field) in cases {
            let error = check_nesting(&text, MAX_YAML_NESTING).expect_err("too deep");
            assert_eq!(error.field.as_deref(), field);
            assert_eq!(error.limit, MAX_YAML_NESTING);
            assert!(error
                .to_string()
                .starts_with("nested deeper than 64 levels at line "));
        }
        assert!(check_nesting(&format!("a: {}{}", "[".repeat(63), "]".repeat(63)), 64).is_ok());
    }
}
