//! The commands in the docs run, so they cannot rot. Every ```sh block of `README.md` and
//! `docs/*.md` is run, page by page, against a real Switchboard; `docs/README.md`
//! ("Writing docs") is the convention for authors. In short:
//!
//! - A ```sh block is run, with `bash -euo pipefail`, after the blocks above it on its
//!   page. ```sh no-run: REASON is not; the reason is required. Other shell spellings
//!   (```bash, ```console, ...) are refused, so nothing is skipped by accident.
//! - A plain ``` block right after a ```sh block is its output: each line, cut at `…`,
//!   gives pieces that must appear in what the block printed, in that order.
//! - Each page gets its own Switchboard (data in `./data` of a fresh working directory)
//!   and, when its runnable blocks name them, etcd (`127.0.0.1:2379`), the Consul double
//!   (`127.0.0.1:8500`) and rnacos (`127.0.0.1:8848`), each on a free port. Those
//!   addresses, Switchboard's `127.0.0.1:8700` (or `localhost:`) and
//!   `./target/release/switchboard` are rewritten to the test's, in commands and outputs.
//! - `SB` (the base URL) is set for every block, since each runs in a shell of its own;
//!   any other variable is set in the block that uses it.
//! - Relative links between pages must name a file and a heading that exist.
//! - A block gets [`BLOCK_DEADLINE`]; what it leaves running in the background is killed
//!   when it ends. So a page waits for a change with a condition (a blocking query, an
//!   `until` loop), never with a fixed `sleep`.

mod backends;
mod blocks;
mod expect;
mod links;
mod shell;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::{test_config, TestServer};
use backends::Backends;

/// The longest one block may take. Blocks wait for changes that arrive within a second or
/// two; this is for a loaded machine.
const BLOCK_DEADLINE: Duration = Duration::from_secs(30);

/// One test per page, so pages run in parallel and a failure names its page; `PAGES` is
/// checked against the files, so a new page cannot be left out.
macro_rules! pages {
    ($($test:ident => $page:literal,)*) => {
        const PAGES: &[&str] = &[$($page),*];
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                run_page($page).await;
            }
        )*
    };
}

pages! {
    readme => "README.md",
    writing_docs => "docs/README.md",
    http_api => "docs/http-api.md",
    sources => "docs/sources.md",
    sources_etcd => "docs/sources-etcd.md",
    sources_consul => "docs/sources-consul.md",
    sources_nacos => "docs/sources-nacos.md",
    consul => "docs/consul.md",
    merge => "docs/merge.md",
    sync_back => "docs/sync-back.md",
    health_checks => "docs/health-checks.md",
    configuration => "docs/configuration.md",
    tls => "docs/tls.md",
    security => "docs/security.md",
    operations => "docs/operations.md",
    architecture => "docs/architecture.md",
    benchmarks => "docs/benchmarks.md",
}

#[test]
fn every_page_is_run() {
    let mut found = vec!["README.md".to_owned()];
    for entry in std::fs::read_dir(repo().join("docs")).expect("read docs/") {
        let name = entry.expect("a docs/ entry").file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".md") {
            found.push(format!("docs/{name}"));
        }
    }
    found.sort();
    let mut listed: Vec<String> = PAGES.iter().map(|page| page.to_string()).collect();
    listed.sort();
    assert_eq!(
        found, listed,
        "add each page to `pages!` in tests/server/docs.rs"
    );
}

#[test]
fn every_link_between_pages_resolves() {
    let broken: Vec<String> = PAGES
        .iter()
        .flat_map(|page| {
            let broken = links::broken_links(&repo(), page);
            broken.into_iter().map(move |why| format!("{page}: {why}"))
        })
        .collect();
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_owned()
}

/// Runs the runnable blocks of `page` in order, failing with the page, the block's line,
/// its commands (as run) and its output at the first that fails or prints something else
/// than the page shows.
async fn run_page(page: &str) {
    let text = std::fs::read_to_string(repo().join(page))
        .unwrap_or_else(|err| panic!("cannot read {page}: {err}"));
    let blocks = blocks::shell_blocks(&text).unwrap_or_else(|err| panic!("{page}, {err}"));
    let runnable: Vec<_> = blocks.iter().filter(|b| b.skip.is_none()).collect();
    if runnable.is_empty() {
        return;
    }
    let dir = tempfile::tempdir().expect("a working directory for the page");
    let mut config = test_config(&dir.path().join("data"));
    // The access control page runs against a server that has it on.
    config.auth.enabled = page == "docs/security.md";
    let server = TestServer::start(config).await;
    let all_code: Vec<&str> = runnable.iter().map(|b| b.code.as_str()).collect();
    let host = server.base.trim_start_matches("http://");
    let backends = Backends::start(&all_code.join("\n"), host).await;
    for block in runnable {
        let code = backends.rewrite(&block.code);
        let env = [("SB", server.base.as_str())];
        let ran = shell::run(&code, dir.path(), &env, BLOCK_DEADLINE).await;
        let fail = |why: String| -> ! {
            panic!(
                "{page}, the ```sh block at line {}: {why}\n--- commands, as run ---\n{code}\
                 --- output ---\n{}\n--- end ---",
                block.line, ran.output
            )
        };
        if let Some(failure) = &ran.failure {
            fail(failure.clone());
        }
        if let Some(shown) = &block.output {
            let shown = backends.rewrite(shown);
            if let Some(piece) = expect::missing_piece(&shown, &ran.output) {
                fail(format!(
                    "its output lacks `{piece}` (or has it out of order)"
                ));
            }
        }
    }
    server.stop().await;
}
