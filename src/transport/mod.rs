//! Talking to hosts: the `Transport` trait and its SSH and local implementations.
pub mod shell;
