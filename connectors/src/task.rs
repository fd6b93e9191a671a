//! A background task owned by whoever holds its handle: dropping the handle stops it, so
//! a session's loops end with the session, also when its stream is dropped mid-way.

use tokio::task::JoinHandle;

pub(crate) struct Task(pub JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}
