//! What the Consul and Nacos sessions share: the updates a session has decided on but not
//! yet handed out ([`Pending`]), and the stream that hands them out, asking the session
//! for its next step whenever none are waiting. The first error is the stream's last
//! item: the session is dropped with it (stopping its tasks), and the supervisor
//! reconnects.

use std::collections::VecDeque;
use std::future::Future;

use futures::StreamExt;

use crate::{BoxUpdateStream, ConnectorError, Update};

/// Updates decided on, in order, not yet handed out.
#[derive(Default)]
pub(crate) struct Pending(VecDeque<Update>);

impl Pending {
    pub fn push(&mut self, update: Update) {
        self.0.push_back(update);
    }

    /// An [`Update::Skipped`] for each `(key, reason)`.
    pub fn skipped(&mut self, skipped: Vec<(String, String)>) {
        for (key, reason) in skipped {
            self.push(Update::Skipped { key, reason });
        }
    }
}

/// A running session of one source.
pub(crate) trait Session: Send + 'static {
    fn pending(&mut self) -> &mut Pending;

    /// Waits for what happens next and queues what it means in [`Session::pending`]; an
    /// error ends the session.
    fn step(&mut self) -> impl Future<Output = Result<(), ConnectorError>> + Send;
}

/// The update stream of `session`.
pub(crate) fn into_stream<S: Session>(session: S) -> BoxUpdateStream {
    futures::stream::unfold(Some(session), |session| async move {
        let mut session = session?;
        loop {
            if let Some(update) = session.pending().0.pop_front() {
                return Some((Ok(update), Some(session)));
            }
            if let Err(err) = session.step().await {
                return Some((Err(err), None));
            }
        }
    })
    .boxed()
}
