//! `jobs`: a file-based, declarative job manager in the GitOps style.
//!
//! The core (`cron`, `schedule`, `spec`, `catalog`, `plan`, and their helpers `duration`,
//! `size`, `name`, `diag`) is pure: it takes `now` as an argument and never touches files,
//! processes, SQLite or the clock. The edges (`source`, `ledger`, `git`, `config`, `clock`,
//! `cli`) translate between the world and core types. See ARCHITECTURE.md.

pub mod cron;
pub mod daemon;
pub mod diag;
pub mod duration;
pub mod executor;
pub mod name;
pub mod schedule;
pub mod size;
pub mod spec;
pub mod template;
pub mod views;
pub mod webhook;

pub mod api;
pub mod apply;
pub mod backfill;
pub mod catalog;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod foreground;
pub mod git;
pub mod graph;
pub mod handle;
pub mod health;
pub mod host;
pub mod ledger;
pub mod metrics;
pub mod notify;
pub mod plan;
pub mod replay;
pub mod rules;
pub mod run;
pub mod runner;
pub mod saved_plan;
pub mod slots;
pub mod source;
pub mod tls;
pub mod ui;
pub mod watch;
