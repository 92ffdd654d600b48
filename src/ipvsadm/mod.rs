//! The ipvsadm command line: parsing, applying to a service table, and `ipvsadm -S -n` output.
//!
//! This is the grammar of ipvsadm 1.31 (see `shared/ipvsadm-format.md` §1), hand-written over
//! `&[&str]` tokens because ipvsadm's popt grammar does not fit a derive-style parser:
//!
//! * The first *option* must be a command (`-A -E -D -C -R -S -a -e -d -L/-l -Z --set -h -v`);
//!   a second command gives `multiple commands specified`. Non-option words may appear anywhere
//!   (popt permutes them); only `--set` takes them (its three timeouts), anything else is
//!   `unexpected argument WORD`. `--` ends the options.
//! * Short options cluster (`-Ln`, `-Lnc`); a short option that takes an argument takes the rest
//!   of its cluster (`-w3`, `-p300`) or else the next token, whatever it looks like (`-w -1` is
//!   an illegal weight). Long options take `--name=value` or `--name value`.
//! * `-p/--persistent` has an *optional* argument: as in popt, the next token is taken as the
//!   timeout unless it starts with `-` (so `-p foo` is `invalid timeout value `foo' specified`,
//!   exactly like ipvsadm); without one the timeout is [`DEFAULT_PERSISTENCE_TIMEOUT`] (360).
//! * Each option may be given once (`multiple '%s' options specified`); which options each
//!   command needs, allows or forbids is ipvsadm's `commands_v_options` table, checked in
//!   ipvsadm's option order so the same error comes first.
//! * Numbers are parsed like ipvsadm's `string_to_number` (C `strtol` base 10: leading
//!   white space and a sign are accepted, the whole string must be used).
//!
//! Differences from ipvsadm, all deliberate:
//!
//! * xvs serves IPv4 TCP and UDP only: IPv6 addresses, `-f/--fwmark-service`, `-6` and
//!   `--sctp-service` are refused with [`RuleError::UnsupportedService`]. Host names are not
//!   resolved (addresses must be dotted quads); ports may be numbers or a few well-known
//!   service names (`http`, `https`, `domain`, `ssh`, ... see `PORT_NAMES`).
//! * One-packet scheduling (`-o/--ops`), persistence engines (`--pe`) and the tunnel options
//!   (`--tun-*`) are not implemented: they are parsed (so that ipvsadm's legality errors
//!   still come first) and then refused with [`RuleError::UnsupportedOption`]. The sync
//!   daemon commands are served (`--start-daemon`, `--stop-daemon`, `-L --daemon` and their
//!   options); an IPv6 `--mcast-group` is refused the same way.
//! * `-j/--fullnat` is an xvs extension: the FULLNAT forwarding method ([`FwdMode::FullNat`]),
//!   like `-m` but the source address is rewritten too. `ipvsadm -S` style output uses `-j`.
//! * Schedulers ipvsadm knows but xvs does not implement (`lblc`, `lblcr`, `fo`, `ovf`,
//!   `twos`) give "Scheduler or persistence engine not found: xvs does not implement ...".
//! * `-b flag-1` / `flag-2` are the kernel's generic names for the fallback / port bits, so
//!   they mean `*-fallback` / `*-port` with sh and mh; `flag-3` has no meaning and is ignored.
//!   Flags are only kept for sh and mh services (other schedulers ignore them in IPVS too).
//! * `-E` and `-e` change only the fields given on the command line (ipvsadm and the kernel
//!   replace every field, resetting the ones not given to their defaults: wlc, not persistent,
//!   weight 1, direct routing, ...). As a consequence `-E` cannot turn persistence off.
//! * The `-b` compatibility check for `-E` without `-s` is skipped (ipvsadm checks against
//!   wlc); for `-A` the flags are checked against `-s` or the default wlc, like ipvsadm.
//! * In `-R` input ([`parse_rules`]) a token starting with `#` starts a comment that runs to
//!   the end of the line. ipvsadm itself fails on such lines (its comment handling is dead
//!   code, which is why `ipvsadm-restore` greps out `^#` lines first).
//! * A restore stops at the first failing line (ipvsadm goes on after kernel errors).

mod apply;
mod command;
mod error;
mod format;
mod listing;
mod options;
mod parse;
#[cfg(test)]
mod tests;

pub use crate::model::ServiceKey;
pub use apply::{apply, services_from_rules};
pub use command::*;
pub use error::*;
pub use format::*;
pub use listing::{list, list_conns, timeouts_line};
pub use parse::{parse_command, parse_rules};
