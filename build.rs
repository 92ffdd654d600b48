//! Builds the XDP programs from C with clang (`tools/setup-deps` installs clang and libbpf-dev).

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR is set by cargo"));
    let arch = match env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("x86_64") => "x86",
        Ok("aarch64") => "arm64",
        Ok(a) => panic!("no BPF include mapping for target arch {a}"),
        Err(_) => "x86",
    };
    for name in ["steer", "ipip_decap", "sink"] {
        let src = format!("src/dataplane/xdp/bpf/{name}.bpf.c");
        println!("cargo:rerun-if-changed={src}");
        println!("cargo:rerun-if-changed=src/dataplane/xdp/bpf/common.h");
        let obj = out.join(format!("{name}.bpf.o"));
        let status = Command::new(env::var("CLANG").unwrap_or_else(|_| "clang".into()))
            .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"])
            .arg(format!("-D__TARGET_ARCH_{arch}"))
            .arg(format!("-I/usr/include/{}-linux-gnu", env::var("CARGO_CFG_TARGET_ARCH").unwrap_or("x86_64".into())))
            .arg("-c")
            .arg(&src)
            .arg("-o")
            .arg(&obj)
            .status()
            .unwrap_or_else(|e| panic!("cannot run clang ({e}); run tools/setup-deps to install clang and libbpf-dev"));
        assert!(status.success(), "clang failed on {src}; run tools/setup-deps (clang, libbpf-dev)");
    }
    println!("cargo:rerun-if-env-changed=CLANG");
}
