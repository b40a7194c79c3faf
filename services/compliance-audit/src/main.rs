//! `redress-compliance-audit`: the compliance-audit service, and `keygen <name> <file>`,
//! which writes a new signer key and prints its verifier key.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("keygen") {
        return keygen(&args[2..]);
    }
    redress_runtime::main(
        redress_compliance_audit::SERVICE,
        redress_compliance_audit::run,
    )
}

fn keygen(args: &[String]) -> ExitCode {
    let [name, file] = args else {
        eprintln!(
            "usage: redress-compliance-audit keygen <name> <file>\n  \
             writes a new Ed25519 signer key (C2SP signed-note) to <file> and prints the \
             verifier key; <name> is the log's origin, e.g. audit.redress.example"
        );
        return ExitCode::FAILURE;
    };
    let signer = match redress_compliance_audit::NoteSigner::generate(name) {
        Ok(signer) => signer,
        Err(error) => {
            eprintln!("redress-compliance-audit keygen: {error}");
            return ExitCode::FAILURE;
        }
    };
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(file)
        .and_then(|mut f| {
            use std::io::Write;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            }
            writeln!(f, "{}", signer.encode())
        });
    if let Err(error) = written {
        eprintln!("redress-compliance-audit keygen: cannot write {file}: {error}");
        return ExitCode::FAILURE;
    }
    println!("{}", signer.verifier().encode());
    ExitCode::SUCCESS
}
