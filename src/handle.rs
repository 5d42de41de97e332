//! The daemon's handle: how the API tells `jobctl serve` what it changed, and reads what the
//! daemon publishes for it (the jobs folder's problems).
//!
//! One message enum, as pueue's client and daemon share one: the API depends on this type
//! only, never on the daemon, so a handler test builds a [`Handle`] with [`Handle::new`], keeps
//! the [`Inbox`], and looks at the commands the handlers sent. It deliberately carries no
//! ledger access: the API reads and writes the ledger itself, then says what changed.

use tokio::sync::{mpsc, watch};

/// What the API tells the daemon after a write it committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Jobs changed (a pause, a resume, an API-owned job written or deleted): the scheduler
    /// reloads them.
    JobsChanged,
    /// A run's cancel was requested: stop it, without reloading the jobs.
    RunsChanged,
    /// A run was queued (a trigger): the executor looks for pending runs.
    RunQueued,
    /// A signed push to the followed repository's branch: fetch it now.
    GitPushed,
}

/// The jobs folder's current errors: how many, and the rendered diagnostics (for `readyz`,
/// `status` and the metrics).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problems {
    pub count: usize,
    pub rendered: String,
}

/// The sending side, held by the API; cheap to clone.
#[derive(Clone, Debug)]
pub struct Handle {
    commands: mpsc::UnboundedSender<Command>,
    problems: watch::Receiver<Option<Problems>>,
}

/// The daemon's side of a [`Handle`]: the commands sent, and where it publishes its problems.
#[derive(Debug)]
pub struct Inbox {
    pub commands: mpsc::UnboundedReceiver<Command>,
    pub problems: watch::Sender<Option<Problems>>,
}

impl Handle {
    /// A handle and the inbox its commands arrive in.
    ///
    /// # Example
    ///
    /// ```
    /// use jobs::handle::{Command, Handle};
    /// let (handle, mut inbox) = Handle::new();
    /// handle.send(Command::RunQueued);
    /// assert_eq!(inbox.commands.try_recv().ok(), Some(Command::RunQueued));
    /// assert_eq!(handle.problems(), None);
    /// ```
    #[must_use]
    pub fn new() -> (Handle, Inbox) {
        let (commands, receiver) = mpsc::unbounded_channel();
        let (problems, watching) = watch::channel(None);
        let handle = Handle {
            commands,
            problems: watching,
        };
        let inbox = Inbox {
            commands: receiver,
            problems,
        };
        (handle, inbox)
    }

    /// Tells the daemon; a daemon that is stopping (its inbox gone) is not told.
    pub fn send(&self, command: Command) {
        let _ = self.commands.send(command);
    }

    /// The jobs folder's problems as last published; `None` when it is valid.
    #[must_use]
    pub fn problems(&self) -> Option<Problems> {
        self.problems.borrow().clone()
    }
}
