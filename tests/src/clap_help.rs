//! Every argument and subcommand of a command-line tool has a `--help` description: the
//! tests of `parley-homeserver`, `parley` and `parley-bench` walk their clap command trees
//! with `undocumented` (the homeserver's includes this file, having no dependency on this
//! crate).

/// The arguments and subcommands in `command`'s tree without help text, as
/// `parley-homeserver admin users --limit`; empty when every one is described.
pub fn undocumented(command: &clap::Command) -> Vec<String> {
    let mut missing = Vec::new();
    walk(command, command.get_name(), &mut missing);
    missing
}

fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
    for arg in command.get_arguments() {
        let id = arg.get_id().as_str();
        if arg.is_hide_set() || id == "help" || id == "version" {
            continue;
        }
        let described = arg
            .get_help()
            .or_else(|| arg.get_long_help())
            .is_some_and(|h| !h.to_string().trim().is_empty());
        if !described {
            let shown = match (arg.get_long(), arg.get_short()) {
                (Some(long), _) => format!("--{long}"),
                (None, Some(short)) => format!("-{short}"),
                (None, None) => format!("<{id}>"),
            };
            missing.push(format!("{path} {shown}"));
        }
    }
    for sub in command.get_subcommands() {
        if sub.is_hide_set() {
            continue;
        }
        let sub_path = format!("{path} {}", sub.get_name());
        let described = sub
            .get_about()
            .or_else(|| sub.get_long_about())
            .is_some_and(|a| !a.to_string().trim().is_empty());
        if !described {
            missing.push(format!("{sub_path} (the command itself)"));
        }
        walk(sub, &sub_path, missing);
    }
}
