//! The VM sizes lifeboat knows, with their vCPUs and memory. Used to reject typos
//! in manifests (with a suggestion) and, later, to show capacity before and after
//! a resize. Figures are Azure's published Dv5/Ddsv5/Edsv5/Esv5/Bs specs.

use crate::manifest::diag::did_you_mean;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmSize {
    pub name: &'static str,
    pub vcpus: u32,
    pub memory_gib: u32,
}

const fn s(name: &'static str, vcpus: u32, memory_gib: u32) -> VmSize {
    VmSize {
        name,
        vcpus,
        memory_gib,
    }
}

pub const VM_SIZES: &[VmSize] = &[
    s("Standard_B2ms", 2, 8),
    s("Standard_B4ms", 4, 16),
    s("Standard_D2s_v5", 2, 8),
    s("Standard_D4s_v5", 4, 16),
    s("Standard_D8s_v5", 8, 32),
    s("Standard_D16s_v5", 16, 64),
    s("Standard_D32s_v5", 32, 128),
    s("Standard_D2ds_v5", 2, 8),
    s("Standard_D4ds_v5", 4, 16),
    s("Standard_D8ds_v5", 8, 32),
    s("Standard_D16ds_v5", 16, 64),
    s("Standard_D2as_v5", 2, 8),
    s("Standard_D4as_v5", 4, 16),
    s("Standard_D8as_v5", 8, 32),
    s("Standard_E2s_v5", 2, 16),
    s("Standard_E4s_v5", 4, 32),
    s("Standard_E8s_v5", 8, 64),
    s("Standard_E16s_v5", 16, 128),
    s("Standard_E2ds_v5", 2, 16),
    s("Standard_E4ds_v5", 4, 32),
    s("Standard_E8ds_v5", 8, 64),
    s("Standard_E16ds_v5", 16, 128),
    s("Standard_E20ds_v5", 20, 160),
    s("Standard_E32ds_v5", 32, 256),
    s("Standard_E48ds_v5", 48, 384),
    s("Standard_E64ds_v5", 64, 512),
];

pub fn lookup(name: &str) -> Option<&'static VmSize> {
    VM_SIZES.iter().find(|s| s.name == name)
}

/// `Ok` for a known size, else the reason with a suggestion.
pub fn check(name: &str) -> Result<(), String> {
    if lookup(name).is_some() {
        return Ok(());
    }
    match did_you_mean(name, VM_SIZES.iter().map(|s| s.name)) {
        Some(hint) => Err(format!("unknown VM size `{name}`, did you mean `{hint}`?")),
        None => Err(format!(
            "unknown VM size `{name}` (lifeboat knows the Bs, Dv5, Ddsv5, Dasv5, Esv5 and Edsv5 sizes)"
        )),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn suggests_sizes() {
        assert!(super::check("Standard_D4s_v5").is_ok());
        let e = super::check("Standard_D4s_v4").unwrap_err();
        assert!(e.contains("did you mean `Standard_D4s_v5`"), "{e}");
    }
}
