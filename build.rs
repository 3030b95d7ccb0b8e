//! Link flags only: the plugin runner (`billiard-worker`) exports the
//! library's `billiard_*` functions, so the plugins it loads can call
//! `billiard_reply_write` without linking libbilliard themselves.

fn main() {
    println!("cargo:rustc-link-arg-bin=billiard-worker=-Wl,--export-dynamic-symbol=billiard_*");
    println!("cargo:rerun-if-changed=build.rs");
}
