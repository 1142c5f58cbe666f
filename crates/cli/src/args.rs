//! Argument types shared by several subcommands, each parsed once into a type.

use anyhow::{bail, Context, Result};
use clap::Args;
use whittle_image::config::ConfigOverrides;
use whittle_image::Limits;

/// Flags every subcommand takes.
#[derive(Args, Debug)]
pub struct Global {
    /// Refuse layers larger than SIZE uncompressed (e.g. 500M, 8G): the bound for decompression bombs.
    #[arg(long, global = true, value_name = "SIZE", default_value = "64G", value_parser = parse_size)]
    pub max_layer_size: u64,
    /// Print nothing but errors (and the digest on stdout).
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Registry credentials for docker:// references (else ~/.docker/config.json).
    #[arg(long, global = true, value_name = "USER:PASSWORD")]
    pub creds: Option<String>,
    /// The Docker client config file to take registry credentials from.
    #[arg(long, global = true, value_name = "FILE")]
    pub authfile: Option<std::path::PathBuf>,
    /// Replace an existing file at an archive destination even when it is not an image archive.
    #[arg(long, global = true)]
    pub force: bool,
    /// The platform to take from a multi-platform image (default: this machine's).
    #[arg(long, global = true, value_name = "OS/ARCH[/VARIANT]", value_parser = whittle_image::Platform::parse)]
    pub platform: Option<whittle_image::Platform>,
    /// A directory of extra CA certificates (*.crt) to trust for registries.
    #[arg(long, global = true, value_name = "DIR")]
    pub cert_dir: Option<std::path::PathBuf>,
    /// Verify registries' TLS certificates (false: also allow plain HTTP).
    #[arg(long, global = true, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub tls_verify: bool,
}

impl Global {
    /// Registry options from the flags.
    pub fn registry(&self) -> Result<whittle_transport::registry::RegistryOptions> {
        Ok(whittle_transport::registry::RegistryOptions {
            creds: self
                .creds
                .as_deref()
                .map(whittle_transport::registry::auth::Credentials::parse)
                .transpose()?,
            authfile: self.authfile.clone(),
            insecure: !self.tls_verify,
            cert_dir: self.cert_dir.clone(),
        })
    }

    /// Read limits from the flags.
    pub fn limits(&self) -> Limits {
        Limits {
            max_layer_bytes: self.max_layer_size,
            ..Limits::default()
        }
    }
}

/// Parses `123`, `100K`, `100M`, `2G`, `1T` (powers of 1024; a trailing `B` or `iB` is allowed).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (num, shift) = match t.chars().last() {
        Some('K' | 'k') => (&t[..t.len() - 1], 10),
        Some('M' | 'm') => (&t[..t.len() - 1], 20),
        Some('G' | 'g') => (&t[..t.len() - 1], 30),
        Some('T' | 't') => (&t[..t.len() - 1], 40),
        _ => (t, 0),
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a size (try 500M or 8G)"))?;
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// Run-configuration flags (they apply to any source; `dir:` sources start from an empty config).
#[derive(Args, Debug, Default)]
pub struct ConfigFlags {
    /// Set the entrypoint: a JSON array (`["nginx","-g","daemon off;"]`) or words split as a shell splits them (quotes group).
    #[arg(long, value_name = "CMD")]
    pub entrypoint: Option<String>,
    /// Set the default command: a JSON array or words split as a shell splits them.
    #[arg(long, value_name = "CMD")]
    pub cmd: Option<String>,
    /// Set an environment variable (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Set the working directory.
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// Set the user (name or uid[:gid]).
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Expose a port, e.g. 80 or 53/udp (repeatable).
    #[arg(long, value_name = "PORT[/PROTO]")]
    pub expose: Vec<String>,
    /// Set a label (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    pub label: Vec<String>,
}

fn command_words(flag: &str, s: &str) -> Result<Vec<String>> {
    if s.trim_start().starts_with('[') {
        serde_json::from_str(s).with_context(|| {
            format!("--{flag} {s:?} starts with '[' but is not a JSON array of strings")
        })
    } else {
        // Words as a shell splits them: `sh -c "nginx -g 'daemon off;'"` is three words.
        let Some(words) = shlex::split(s) else {
            bail!("--{flag} {s:?} has an unterminated quote");
        };
        if words.is_empty() {
            bail!("--{flag} is empty");
        }
        Ok(words)
    }
}

impl ConfigFlags {
    /// The overrides these flags ask for.
    pub fn overrides(&self) -> Result<ConfigOverrides> {
        for e in &self.env {
            if !e.contains('=') || e.starts_with('=') {
                bail!("--env {e:?} is not KEY=VALUE");
            }
        }
        let mut labels = Vec::new();
        for l in &self.label {
            match l.split_once('=') {
                Some((k, v)) if !k.is_empty() => labels.push((k.to_string(), v.to_string())),
                _ => bail!("--label {l:?} is not KEY=VALUE"),
            }
        }
        for p in &self.expose {
            let (port, proto) = p.split_once('/').unwrap_or((p, "tcp"));
            if port.parse::<u16>().is_err() || !matches!(proto, "tcp" | "udp" | "sctp") {
                bail!("--expose {p:?} is not PORT or PORT/tcp|udp|sctp");
            }
        }
        Ok(ConfigOverrides {
            entrypoint: self
                .entrypoint
                .as_deref()
                .map(|s| command_words("entrypoint", s))
                .transpose()?,
            cmd: self
                .cmd
                .as_deref()
                .map(|s| command_words("cmd", s))
                .transpose()?,
            env: self.env.clone(),
            workdir: self.workdir.clone(),
            user: self.user.clone(),
            expose: self.expose.clone(),
            labels,
            ..ConfigOverrides::default()
        })
    }
}

/// `SOURCE_DATE_EPOCH`, when set.
pub fn source_date_epoch() -> Result<Option<u64>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => Ok(Some(v.trim().parse().with_context(|| {
            format!("SOURCE_DATE_EPOCH={v:?} is not a whole number of seconds")
        })?)),
        Err(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("100").unwrap(), 100);
        assert_eq!(parse_size("100M").unwrap(), 100 << 20);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn command_forms() {
        assert_eq!(
            command_words("cmd", r#"["a b","c"]"#).unwrap(),
            ["a b", "c"]
        );
        assert_eq!(
            command_words("cmd", "nginx -g x").unwrap(),
            ["nginx", "-g", "x"]
        );
        assert!(command_words("cmd", "[oops").is_err());
        // Quotes group words as a shell's do (issue 15: they were split on spaces).
        assert_eq!(
            command_words("entrypoint", r#"sh -c "nginx -g 'daemon off;'""#).unwrap(),
            ["sh", "-c", "nginx -g 'daemon off;'"]
        );
        assert!(command_words("cmd", "sh -c \"unterminated").is_err());
    }
}
