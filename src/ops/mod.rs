//! Operations on a running estate, beyond provisioning: the HiX image lifecycle
//! (`image`), the Disaster Activation Plan (`dap`) and fleet status (`status`). Each talks to the
//! cloud through the ARM client and reports events; none prints.

pub mod dap;
pub mod image;
pub mod status;
