//! Questions to the operator on the terminal: whether to go ahead, and the
//! pauses a rollout policy asks for between batches.
use std::io::IsTerminal;

use crate::cli::progress::DeployProgress;
use crate::deploy::run::Pauser;
use ferry_rollout::{Batch, Pause};

/// Whether the operator can be asked questions.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Asks a yes/no question on stderr.
pub fn ask(question: &str) -> bool {
    crate::cli::output::question(question);
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).is_ok() && matches!(answer.trim(), "y" | "Y" | "yes")
}

/// Pauses between batches as the policy says.
pub struct CliPauser<'a> {
    /// `--yes`: a `pause = confirm` is answered yes without asking.
    pub yes: bool,
    /// The live display, held still while a question waits for its answer.
    pub progress: &'a DeployProgress,
}

impl Pauser for CliPauser<'_> {
    fn pause(&self, pause: &Pause, next: &Batch) -> bool {
        match pause {
            Pause::None => true,
            Pause::Duration(duration) => {
                std::thread::sleep(*duration);
                true
            }
            // Without a terminal nobody can answer: stop rather than guess.
            Pause::Confirm => {
                self.yes
                    || (interactive()
                        && self
                            .progress
                            .suspend(|| ask(&format!("continue with {}?", next.hosts.join(", ")))))
            }
        }
    }
}
