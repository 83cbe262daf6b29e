//! The embedded local cloud as an [`Inventory`]: one listing of its store, filtered
//! like the Resource Graph query (`lifeboat-managed`), counted as one read.

use super::{CloudError, Inventory, ObservedResource, PriorState, Requests};
use crate::emulator::store::Store;

pub struct LocalCloud {
    pub store: Store,
}

impl Inventory for LocalCloud {
    fn prior_state(&self) -> Result<PriorState, CloudError> {
        let all = self.store.list()?;
        let observed: Vec<ObservedResource> = all
            .into_iter()
            .map(|r| ObservedResource {
                id: r.id,
                resource_type: r.resource_type,
                body: r.body,
            })
            .collect();
        // Untagged child types (peerings, containers) are kept when an ancestor is managed.
        let state = PriorState::new(observed, Requests::default());
        let managed: Vec<ObservedResource> = state
            .resources
            .iter()
            .filter(|r| state.ownership(r).is_some())
            .cloned()
            .collect();
        Ok(PriorState::new(managed, Requests { read: 1, write: 0 }))
    }
}
