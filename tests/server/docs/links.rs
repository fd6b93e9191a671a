//! Relative links between the pages: each must name a file that exists and, for a
//! `#section`, a heading of that page, so moving or renaming a page or a heading cannot
//! leave a dead link behind.

use std::path::Path;

/// Every broken relative link of `page` (a path below `repo`), as `target: why`.
pub fn broken_links(repo: &Path, page: &str) -> Vec<String> {
    let text = std::fs::read_to_string(repo.join(page)).unwrap_or_default();
    let dir = repo
        .join(page)
        .parent()
        .expect("a page is in a directory")
        .to_owned();
    let mut broken = Vec::new();
    for target in targets(&text) {
        if target.contains("://") || target.starts_with("mailto:") {
            continue;
        }
        let (path, anchor) = target.split_once('#').unwrap_or((target, ""));
        let file = if path.is_empty() {
            repo.join(page)
        } else {
            dir.join(path)
        };
        if !file.exists() {
            broken.push(format!("{target}: no file {}", file.display()));
            continue;
        }
        let is_page = path.is_empty() || path.ends_with(".md");
        if anchor.is_empty() || !is_page {
            continue;
        }
        let linked = std::fs::read_to_string(&file).unwrap_or_default();
        if !anchors(&linked).iter().any(|a| a == anchor) {
            broken.push(format!("{target}: no heading with anchor `#{anchor}`"));
        }
    }
    broken
}

/// The targets of inline links, `[text](target)`.
fn targets(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        if let Some(end) = rest.find(')') {
            found.push(&rest[..end]);
        }
    }
    found
}

/// The anchors GitHub gives a page's headings: lowercased, punctuation dropped, spaces
/// as `-`. Headings inside code fences (shell comments) are not headings.
fn anchors(page: &str) -> Vec<String> {
    let mut in_fence = false;
    let mut anchors = Vec::new();
    for line in page.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
            continue;
        }
        let Some(heading) = line.strip_prefix('#') else {
            continue;
        };
        if in_fence {
            continue;
        }
        let heading = heading.trim_start_matches('#').trim();
        let anchor: String = heading
            .to_lowercase()
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                _ => None,
            })
            .collect();
        anchors.push(anchor);
    }
    anchors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_follow_github() {
        let page = "# Top\n## Wait for changes: blocking queries\n```sh\n# not a heading\n```\n## `[[sources]]`\n";
        assert_eq!(
            anchors(page),
            ["top", "wait-for-changes-blocking-queries", "sources"]
        );
        assert_eq!(targets("[a](x.md#y) and [b](../c)"), ["x.md#y", "../c"]);
    }
}
