//! Operations on a running estate, beyond provisioning: the HiX image lifecycle
//! (`image`), the Disaster Activation Plan (`dap`), fleet status (`status`) and the
//! signed endpoint catalog (`catalog`). Each talks to the
//! cloud through the ARM client and reports events; none prints.

pub mod catalog;
pub mod dap;
pub mod image;
pub mod roster;
pub mod status;
