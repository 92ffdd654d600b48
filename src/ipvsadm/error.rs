//! ipvsadm's messages and exit codes.

/// An ipvsadm error. `Display` is ipvsadm's own message where ipvsadm has one.
///
/// [`RuleError::exit_code`] is ipvsadm's exit status: 255 for usage errors (ipvsadm prints
/// the message, if any, then ``Try `ipvsadm -h' or 'ipvsadm --help' for more information.``,
/// see [`TRY_HELP`]), 2 for errors reported with `fail()`, 1 for kernel errors.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// No command, or the first option is not a command.
    #[error("Try `ipvsadm -h' or 'ipvsadm --help' for more information.")]
    NoCommand,
    /// popt: an option ipvsadm does not know.
    #[error("{0}: unknown option")]
    UnknownOption(String),
    /// popt: an option that needs an argument is last.
    #[error("{0}: missing argument")]
    MissingArgument(String),
    /// popt: `--flag=value` for an option without argument.
    #[error("{0}: option does not take an argument")]
    UnwantedArgument(String),
    /// `-R` inside `-R` input (ipvsadm: try-help exit).
    #[error("the restore command (-R) cannot be used in restore input")]
    NestedRestore,

    #[error("multiple commands specified")]
    MultipleCommands,
    #[error("multiple '{0}' options specified")]
    MultipleOptions(&'static str),
    #[error("You need to supply the '{option}' option for the '{command}' command")]
    MissingOption { option: &'static str, command: &'static str },
    #[error("Illegal '{option}' option with the '{command}' command")]
    IllegalOption { option: &'static str, command: &'static str },
    #[error("The option '{option}' conflicts with the '{other}' option in the '{command}' command")]
    ConflictingOptions { option: &'static str, other: &'static str, command: &'static str },
    #[error("options conflicts in the list command")]
    ListConflict,
    #[error("illegal virtual server address[:port] specified")]
    IllegalServiceAddress,
    #[error("illegal real server address[:port] specified")]
    IllegalServerAddress,
    /// `-M` is not a dotted IPv4 address or not a contiguous mask.
    #[error("illegal virtual server persistent mask specified")]
    IllegalNetmask,
    #[error("invalid timeout value `{0}' specified")]
    InvalidTimeout(String),
    #[error("illegal weight specified")]
    IllegalWeight,
    #[error("illegal u_threshold specified")]
    IllegalUThreshold,
    #[error("illegal l_threshold specified")]
    IllegalLThreshold,
    #[error("Zero port specified for non-persistent service")]
    ZeroPort,
    #[error("incompatible scheduler flag `{0}'")]
    IncompatibleSchedFlag(String),
    #[error("invalid scheduler flag `{0}'")]
    InvalidSchedFlag(String),
    #[error("--set option requires 3 timeout values")]
    SetNeedsThreeValues,
    #[error("unexpected argument {0}")]
    UnexpectedArgument(String),
    /// IPv6, fwmark and SCTP services.
    #[error("xvs supports IPv4 TCP and UDP services only: '{0}'")]
    UnsupportedService(String),
    /// An IPv6 real server.
    #[error("xvs supports IPv4 real servers only: '{0}'")]
    UnsupportedServer(String),
    #[error("illegal tunnel type specified")]
    IllegalTunnelType,
    #[error("Tunnel options conflict with forward method")]
    TunnelConflict,
    /// `--tun-type gue|gre`: xvs encapsulates in IP-in-IP only.
    #[error("xvs tunnels with IP-in-IP only: --tun-type {0} is not supported (use --tun-type ipip, or leave it out)")]
    UnsupportedTunnel(String),
    /// A sync daemon option's value (`--start-daemon`'s role, `--syncid`, `--mcast-*`,
    /// `--sync-maxlen`): ipvsadm's `fail(2, "illegal ... specified")`.
    #[error("illegal {0} specified")]
    IllegalDaemonValue(&'static str),
    /// One-packet scheduling, persistence engines, tunnel options.
    #[error("xvs does not support the '{0}' option")]
    UnsupportedOption(String),

    #[error("Service already exists")]
    ServiceExists,
    #[error("Scheduler or persistence engine not found")]
    SchedulerNotFound,
    /// A scheduler ipvsadm knows (lblc, lblcr, fo, ovf, twos) that xvs does not implement.
    #[error("Scheduler or persistence engine not found: xvs does not implement the '{0}' scheduler")]
    SchedulerNotImplemented(String),
    #[error("No such service")]
    NoSuchService,
    #[error("Service not defined")]
    ServiceNotDefined,
    #[error("Destination already exists")]
    DestinationExists,
    #[error("No such destination")]
    NoSuchDestination,
    /// The kernel refuses `l_threshold > u_threshold` with ERANGE (even when u is 0).
    #[error("Numerical result out of range: l_threshold {l} is above u_threshold {u}")]
    ThresholdRange { l: u32, u: u32 },

    /// An error on one line of restore input.
    #[error("line {line}: {source}")]
    Line { line: usize, source: Box<RuleError> },
}

/// What ipvsadm prints after a usage error (exit code 255).
pub const TRY_HELP: &str = "Try `ipvsadm -h' or 'ipvsadm --help' for more information.";

impl RuleError {
    /// ipvsadm's exit status for this error: 255 (usage, `tryhelp_exit`/`exit(-1)`),
    /// 2 (`fail()`), 1 (kernel errors such as "Service already exists").
    pub fn exit_code(&self) -> i32 {
        use RuleError::*;
        match self {
            NoCommand | UnknownOption(_) | MissingArgument(_) | UnwantedArgument(_) | NestedRestore => 255,
            ServiceExists
            | SchedulerNotFound
            | SchedulerNotImplemented(_)
            | NoSuchService
            | ServiceNotDefined
            | DestinationExists
            | NoSuchDestination
            | ThresholdRange { .. } => 1,
            Line { source, .. } => source.exit_code(),
            _ => 2,
        }
    }

    /// Whether ipvsadm would follow this message with [`TRY_HELP`] (exit code 255).
    pub fn is_usage_error(&self) -> bool {
        self.exit_code() == 255
    }
}
