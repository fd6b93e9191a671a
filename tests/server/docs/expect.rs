//! Whether a block's real output matches the output its page shows. Pages shorten what
//! varies (times, generated ids) and what is long with `…`, so the shown output is read as
//! pieces: each line, cut at every `…`, and every piece must appear in the real output,
//! in the page's order. Line breaks need not match: curl prints JSON bodies without one.

/// The first piece of `shown` that `output` lacks (in order), or `None` when it shows
/// everything.
pub fn missing_piece<'a>(shown: &'a str, output: &str) -> Option<&'a str> {
    let mut from = 0;
    let pieces = shown.lines().flat_map(|line| line.split('…'));
    for piece in pieces.map(str::trim).filter(|piece| !piece.is_empty()) {
        match output[from..].find(piece) {
            Some(at) => from += at + piece.len(),
            None => return Some(piece),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_must_appear_in_order_with_anything_between() {
        let output = "HTTP/1.1 201 Created\r\nlocation: /x\r\n\r\n{\"id\":\"a\",\"t\":\"12:00\",\"ok\":true}{\"b\":1}";
        let shown = "HTTP/1.1 201 Created\n…\n{\"id\":\"a\",…,\"ok\":true}\n{\"b\":1}\n";
        assert_eq!(missing_piece(shown, output), None);
        assert_eq!(
            missing_piece("{\"b\":1}\n{\"id\":\"a\"", output),
            Some("{\"id\":\"a\"")
        );
        assert_eq!(
            missing_piece("HTTP/1.1 200 OK", output),
            Some("HTTP/1.1 200 OK")
        );
    }
}
