//! Operations on a running estate, beyond provisioning: the HiX image lifecycle
//! (and, later, activation, status and the endpoint catalog). Each talks to the
//! cloud through the ARM client and reports events; none prints.

pub mod image;
