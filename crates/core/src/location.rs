//! Where lifeboat keeps its state (locks, journal, audit trail, saved plans):
//! `local` or `azblob://ACCOUNT/CONTAINER`. Only the value and its syntax (Azure's
//! naming rules) live here, so the manifest can check `spec.state` without
//! knowing the store; the engine's `state` module opens it.

/// Where state lives, as named on the command line or in `platform.yaml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local,
    Blob { account: String, container: String },
}

impl Location {
    /// `local` or `azblob://ACCOUNT/CONTAINER` (Azure's naming rules: account 3-24
    /// lowercase letters and digits; container 3-63 of lowercase letters, digits
    /// and single hyphens, starting and ending with a letter or digit).
    pub fn parse(s: &str) -> Result<Location, String> {
        if s == "local" {
            return Ok(Location::Local);
        }
        let Some(rest) = s.strip_prefix("azblob://") else {
            return Err(format!(
                "`{s}`: expected `local` or `azblob://ACCOUNT/CONTAINER`"
            ));
        };
        let Some((account, container)) = rest.trim_end_matches('/').split_once('/') else {
            return Err(format!("`{s}`: expected azblob://ACCOUNT/CONTAINER"));
        };
        if !(3..=24).contains(&account.len())
            || !account
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            return Err(format!(
                "`{account}`: a storage account name is 3-24 lowercase letters and digits"
            ));
        }
        let ok_container = (3..=63).contains(&container.len())
            && container
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !container.starts_with('-')
            && !container.ends_with('-')
            && !container.contains("--");
        if !ok_container {
            return Err(format!(
                "`{container}`: a container name is 3-63 lowercase letters, digits and single hyphens, starting and ending with a letter or digit"
            ));
        }
        Ok(Location::Blob {
            account: account.to_string(),
            container: container.to_string(),
        })
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Local => f.write_str("local"),
            Location::Blob { account, container } => write!(f, "azblob://{account}/{container}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_with_azure_naming_rules() {
        assert_eq!(Location::parse("local").unwrap(), Location::Local);
        assert_eq!(
            Location::parse("azblob://lbstate/lifeboat-state").unwrap(),
            Location::Blob {
                account: "lbstate".into(),
                container: "lifeboat-state".into()
            }
        );
        for bad in [
            "s3://x/y",
            "azblob://lbstate",
            "azblob://LBSTATE/state",
            "azblob://ab/state",
            "azblob://lbstate/St",
            "azblob://lbstate/-state",
            "azblob://lbstate/a--b",
        ] {
            assert!(Location::parse(bad).is_err(), "{bad}");
        }
    }
}
