//! Reads a Markdown page into its shell blocks: the fenced code a reader would paste,
//! whether the docs test runs it (and if not, why), and the output the page shows for it.
//! Fences of any other language are only read to know where they end, so a ```sh line
//! inside a longer ```` fence (an example of the convention itself) is not a block.

/// Languages a reader might use for shell code. The convention is ```sh, so that one
/// spelling is run; the others are refused rather than silently skipped.
const OTHER_SHELLS: &[&str] = &[
    "bash",
    "shell",
    "console",
    "zsh",
    "sh-session",
    "shellsession",
];

/// One ```sh block of a page.
#[derive(Debug, Clone, PartialEq)]
pub struct ShellBlock {
    /// 1-based line of the opening fence, to name the block in failures.
    pub line: usize,
    pub code: String,
    /// Why the block is not run (```sh no-run REASON); `None`: it is run.
    pub skip: Option<String>,
    /// The body of a plain ``` block right after this one (blank lines between at most):
    /// the output the page shows for it.
    pub output: Option<String>,
}

/// A fenced block as written.
struct Fence {
    line: usize,
    info: String,
    body: String,
    /// Only blank lines between the previous fence's end and this fence.
    follows_directly: bool,
}

/// The shell blocks of `page`, or what breaks the convention, with its line.
pub fn shell_blocks(page: &str) -> Result<Vec<ShellBlock>, String> {
    let fences = fences(page)?;
    let mut blocks = Vec::new();
    for (i, fence) in fences.iter().enumerate() {
        let mut words = fence.info.splitn(2, char::is_whitespace);
        let language = words.next().unwrap_or_default();
        let options = words.next().unwrap_or_default().trim();
        if OTHER_SHELLS.contains(&language) {
            return Err(format!(
                "line {}: shell commands are fenced ```sh (or ```sh no-run REASON), not ```{language}",
                fence.line
            ));
        }
        if language != "sh" {
            continue;
        }
        let skip = match options.strip_prefix("no-run") {
            None if options.is_empty() => None,
            None => {
                return Err(format!(
                    "line {}: unknown option `{options}` after ```sh (only `no-run REASON`)",
                    fence.line
                ))
            }
            Some(reason) => {
                let reason = reason.trim_start_matches(':').trim();
                if reason.is_empty() {
                    return Err(format!(
                        "line {}: ```sh no-run needs a reason, e.g. ```sh no-run: runs until Ctrl-C",
                        fence.line
                    ));
                }
                Some(reason.to_owned())
            }
        };
        let output = fences
            .get(i + 1)
            .filter(|next| next.follows_directly && next.info.is_empty())
            .map(|next| next.body.clone());
        blocks.push(ShellBlock {
            line: fence.line,
            code: fence.body.clone(),
            skip,
            output,
        });
    }
    Ok(blocks)
}

/// Every fenced block, CommonMark-style: a run of at least three backticks or tildes
/// opens one (indented by at most three spaces), and a run of the same character at least
/// as long, alone on its line, closes it.
fn fences(page: &str) -> Result<Vec<Fence>, String> {
    let mut fences = Vec::new();
    let mut open: Option<(char, usize, Fence)> = None;
    let mut blank_since_last = false;
    for (i, line) in page.lines().enumerate() {
        let line_number = i + 1;
        if let Some((marker, length, fence)) = &mut open {
            if closes(line, *marker, *length) {
                let (_, _, fence) = open.take().expect("a fence is open");
                fences.push(fence);
                blank_since_last = true;
            } else {
                fence.body.push_str(line);
                fence.body.push('\n');
            }
            continue;
        }
        if let Some((marker, length, info)) = opens(line) {
            let fence = Fence {
                line: line_number,
                info,
                body: String::new(),
                follows_directly: blank_since_last,
            };
            open = Some((marker, length, fence));
        } else if !line.trim().is_empty() {
            blank_since_last = false;
        }
    }
    match open {
        Some((_, _, fence)) => Err(format!("line {}: this fence is never closed", fence.line)),
        None => Ok(fences),
    }
}

/// `(marker, run length, info string)` when `line` opens a fence.
fn opens(line: &str) -> Option<(char, usize, String)> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    let rest = &line[indent..];
    let marker = rest.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let length = rest.len() - rest.trim_start_matches(marker).len();
    (indent <= 3 && length >= 3).then(|| (marker, length, rest[length..].trim().to_owned()))
}

fn closes(line: &str, marker: char, length: usize) -> bool {
    let trimmed = line.trim();
    trimmed.len() >= length && trimmed.chars().all(|c| c == marker)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sh_blocks_run_unless_no_run_and_keep_the_output_shown_after_them() {
        let page = "# Page\n\n```sh\ncurl -fsS $SB/health\n```\n\n```\n{\"status\":\"ok\"}\n```\n\
                    text\n\n```sh no-run: runs until Ctrl-C\nmake run\n```\n\
                    ```toml\nx = 1\n```\n";
        let blocks = shell_blocks(page).unwrap();
        assert_eq!(blocks.len(), 2, "{blocks:?}");
        assert_eq!(blocks[0].line, 3);
        assert_eq!(blocks[0].code, "curl -fsS $SB/health\n");
        assert_eq!(blocks[0].skip, None);
        assert_eq!(blocks[0].output.as_deref(), Some("{\"status\":\"ok\"}\n"));
        assert_eq!(blocks[1].skip.as_deref(), Some("runs until Ctrl-C"));
        assert_eq!(blocks[1].output, None, "a ```toml block is not output");
    }

    #[test]
    fn output_is_only_a_plain_fence_with_nothing_but_blank_lines_before_it() {
        let page =
            "```sh\necho a\n```\nSome words.\n```\na\n```\n```sh\necho b\n```\n```text\nb\n```\n";
        let blocks = shell_blocks(page).unwrap();
        assert_eq!(blocks[0].output, None);
        assert_eq!(blocks[1].output, None);
    }

    #[test]
    fn a_longer_fence_holds_sh_fences_without_making_them_blocks() {
        let page = "````markdown\n```sh\nrm -rf /\n```\n````\n";
        assert_eq!(shell_blocks(page).unwrap(), []);
    }

    #[test]
    fn breaking_the_convention_is_an_error_naming_the_line() {
        let cases = [
            (
                "```bash\nls\n```\n",
                "line 1: shell commands are fenced ```sh",
            ),
            (
                "\n```sh no-run\nls\n```\n",
                "line 2: ```sh no-run needs a reason",
            ),
            ("```sh quick\nls\n```\n", "line 1: unknown option `quick`"),
            ("text\n```sh\nls\n", "line 2: this fence is never closed"),
        ];
        for (page, expected) in cases {
            let err = shell_blocks(page).unwrap_err();
            assert!(err.starts_with(expected), "{page:?}: {err}");
        }
    }
}
