//! Fault injection for the emulator (`--faults`, `LIFEBOAT_EMULATOR_FAULTS`):
//! `429=0.05,500=0.05,reset=0.02,lro-fail=0.02`, each a probability per mutating
//! request, and `shipping-stop=SECONDS` (log backups stop arriving that long after
//! shipping began, as when the hospital's data centre is lost). Parsing only; the emulator rolls the dice.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 429 TooManyRequests, nothing done.
    Throttle,
    /// 500 InternalServerError, nothing done.
    ServerError,
    /// The request takes effect, then the connection drops before the response.
    Reset,
    /// The request is accepted; its long-running operation ends `Failed`.
    OperationFails,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    pub throttle: f64,
    pub server_error: f64,
    pub reset: f64,
    pub lro_fail: f64,
    /// A VM start fails `AllocationFailed` (the region has no capacity for the
    /// size): `alloc-fail=0.3`.
    pub alloc_fail: f64,
    /// Microsoft Graph answers a mutating request (or `$batch` item) 429 with a
    /// Retry-After: `graph429=0.2`.
    pub graph429: f64,
    /// Log backups stop arriving this many Azure seconds after log shipping
    /// began (the hospital's data centre is gone): `shipping-stop=600`.
    pub shipping_stop_s: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("fault spec `{spec}`: {reason} (expected e.g. 429=0.05,500=0.05,reset=0.02,lro-fail=0.02)")]
pub struct FaultSpecError {
    pub spec: String,
    pub reason: String,
}

impl Faults {
    pub fn parse(spec: &str) -> Result<Faults, FaultSpecError> {
        let err = |reason: String| FaultSpecError {
            spec: spec.to_string(),
            reason,
        };
        let mut f = Faults::default();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| err(format!("`{part}` has no `=`")))?;
            if k.trim() == "shipping-stop" {
                f.shipping_stop_s = Some(
                    v.trim()
                        .parse()
                        .map_err(|_| err(format!("shipping-stop={v}: not a number of seconds")))?,
                );
                continue;
            }
            let p: f64 = v
                .trim()
                .parse()
                .map_err(|_| err(format!("`{v}` is not a number")))?;
            if !(0.0..=1.0).contains(&p) {
                return Err(err(format!("{k}={v}: a probability is between 0 and 1")));
            }
            match k.trim() {
                "429" => f.throttle = p,
                "500" => f.server_error = p,
                "reset" => f.reset = p,
                "lro-fail" => f.lro_fail = p,
                "alloc-fail" => f.alloc_fail = p,
                "graph429" => f.graph429 = p,
                other => {
                    return Err(err(format!(
                        "unknown fault `{other}` (429, 500, reset, lro-fail, alloc-fail, graph429, shipping-stop)"
                    )));
                }
            }
        }
        Ok(f)
    }

    pub fn is_none(&self) -> bool {
        *self == Faults::default()
    }
}

impl fmt::Display for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "429={},500={},reset={},lro-fail={},alloc-fail={},graph429={}",
            self.throttle,
            self.server_error,
            self.reset,
            self.lro_fail,
            self.alloc_fail,
            self.graph429
        )?;
        match self.shipping_stop_s {
            Some(s) => write!(f, ",shipping-stop={s}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_spec() {
        let f = Faults::parse("429=0.05,500=0.05,reset=0.02,lro-fail=0.02").unwrap();
        assert_eq!(f.throttle, 0.05);
        assert_eq!(f.lro_fail, 0.02);
        assert!(Faults::parse("").unwrap().is_none());
    }

    #[test]
    fn rejects_bad_specs() {
        assert!(
            Faults::parse("429")
                .unwrap_err()
                .to_string()
                .contains("no `=`")
        );
        assert!(Faults::parse("429=2").is_err());
        assert!(
            Faults::parse("timeout=0.1")
                .unwrap_err()
                .to_string()
                .contains("unknown fault")
        );
    }
}
