//! Integration tests: a real perch on 127.0.0.1:0 spoken to in raw bytes over TLS and TCP.

mod admin;
mod chat;
mod check;
mod dialogs;
mod disk_full;
mod durability;
mod fuzz_regressions;
mod history_cache;
mod hostile;
mod http;
mod layers;
mod limits;
mod load;
mod ntlm;
mod operator;
mod registrar;
mod search_cost;
mod secrecy;
mod support;
mod torture;
mod transcripts;
mod web;
mod wire;
mod xmpp;
