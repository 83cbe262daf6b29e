//! Resource writes: PUT (create or update, with the parent check and the
//! write-only fields kept out of reads) and DELETE (with its children).

use super::*;

impl Emulator {
    /// Parent must exist (resource group for top-level resources, the parent for
    /// child resources).
    pub(super) fn parent_missing(&self, id: &ResourceId, now: u64) -> Option<Reply> {
        let parent = id.parent()?;
        if parent.as_str().split('/').count() <= 3 {
            return None; // the subscription
        }
        match self.load(&parent, now) {
            Ok(Some(p)) if self.view(&p, now).is_some() => None,
            Ok(_) => Some(if parent.is_resource_group() {
                Self::not_found(&parent)
            } else {
                Reply::error(
                    404,
                    "ParentResourceNotFound",
                    &format!(
                        "Can not perform requested operation on nested resource. Parent resource '{}' not found.",
                        parent.display_name()
                    ),
                )
            }),
            Err(r) => Some(r),
        }
    }

    pub(super) fn put(&self, req: &Request, id: &ResourceId, api: &str, fail_op: bool) -> Reply {
        let mut body = match Self::object_body(req) {
            Ok(v) => v,
            Err(refused) => return refused,
        };
        let lock = self.lock(id);
        let _g = lock.lock().expect("resource lock");
        let now = now_ms();
        if let Some(r) = self.parent_missing(id, now) {
            return r;
        }
        let existing = match self.load(id, now) {
            Ok(e) => e,
            Err(r) => return r,
        };
        if let Some(op) = existing.as_ref().and_then(|e| e.operation.as_ref())
            && now < op.done_ms
        {
            return Self::busy(op, now, self.retry_after(op.done_ms - now));
        }
        if id
            .resource_type()
            .eq_ignore_ascii_case("Microsoft.KeyVault/vaults/secrets")
            && let Some(value) = body.pointer("/properties/value").and_then(Value::as_str)
            && let Err(e) = self.store.put_secret(id, value)
        {
            return Reply::error(500, "InternalServerError", &format!("emulator vault: {e}"));
        }
        for p in WRITE_ONLY {
            if let Some((parent, key)) = p.rsplit_once('/')
                && let Some(Value::Object(o)) = body.pointer_mut(parent)
            {
                o.remove(key);
            }
        }
        for k in ["id", "name", "type"] {
            body.as_object_mut().expect("object").remove(k);
        }
        if let Some(identity) = body.get_mut("identity").and_then(Value::as_object_mut)
            && identity
                .get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.contains("SystemAssigned"))
        {
            identity.insert(
                "principalId".into(),
                json!(stable_guid(&format!("principal:{}", id.key()))),
            );
            identity.insert(
                "tenantId".into(),
                json!(stable_guid(&format!("tenant:{}", id.subscription()))),
            );
        }
        if let Some(props) = body.get_mut("properties").and_then(Value::as_object_mut) {
            props.remove("provisioningState");
        }
        if let Err(refusal) = self.refuse(id, &body, now) {
            return refusal;
        }
        let declared = shape::take_inline(id, &mut body);
        self.server_fields(id, &mut body, existing.as_ref(), now);
        let resource_type = id.resource_type();
        if resource_type.eq_ignore_ascii_case("Microsoft.ManagedIdentity/userAssignedIdentities") {
            body["properties"] = json!({
                "principalId": stable_guid(&format!("principal:{}", id.key())),
                "clientId": stable_guid(&format!("client:{}", id.key())),
                "tenantId": stable_guid(&format!("tenant:{}", id.subscription())),
            });
        }
        if let Some(image) = os_image(&body) {
            // As Azure: a VM cannot be created from an image version that does not exist.
            let exists =
                matches!(self.load(&image, now), Ok(Some(ref v)) if self.view(v, now).is_some());
            if !exists {
                return Reply::error(
                    404,
                    "GalleryImageNotFound",
                    &format!(
                        "The gallery image {} is not available. Build it first, or contact the image owner.",
                        image.as_str()
                    ),
                );
            }
        }
        if resource_type.eq_ignore_ascii_case("Microsoft.Compute/virtualMachines")
            && let Err(refused) = self.admit_vm(id, &body)
        {
            return refused;
        }
        let creating = existing.is_none();
        let os_disk = match resource_type.eq_ignore_ascii_case("Microsoft.Compute/virtualMachines")
        {
            true => self.os_disk_of(id, &mut body, existing.as_ref(), now),
            false => None,
        };
        let fam = put_family(&resource_type);
        let secs = if creating {
            put_seconds(&resource_type)
        } else {
            put_seconds(&resource_type).min(30.0) / 2.0
        };
        let op = self.new_operation(id, OpKind::Put { creating }, secs, fail_op, now);
        let is_vm = resource_type.eq_ignore_ascii_case("Microsoft.Compute/virtualMachines");
        let sql_image = is_vm && crate::sql::is_sql_image(&body);
        let initial_mode = body
            .pointer("/tags/lifeboat-restore-mode")
            .and_then(Value::as_str)
            .map(str::to_string);
        let stored = StoredResource {
            id: id.clone(),
            resource_type: resource_type.clone(),
            api_version: api.to_string(),
            body,
            // Synchronous types answer with their final state: nothing to fail later.
            operation: (fam != Family::Sync).then(|| op.clone()),
            power: match &existing {
                Some(e) => e.power.clone(),
                None if is_vm => Some("running".into()),
                None => None,
            },
            sql_mode: match &existing {
                Some(e) => e.sql_mode.clone(),
                None if sql_image => initial_mode,
                None => None,
            },
            // A SQL Server VM receives the hospital's log backups from its creation.
            shipping: match &existing {
                Some(e) => e.shipping.clone(),
                None if sql_image => Some(crate::store::Shipping {
                    since_ms: now,
                    recovered_ms: None,
                }),
                None => None,
            },
            visible_from_ms: existing.as_ref().and_then(|e| e.visible_from_ms),
            replicated_ms: existing.as_ref().and_then(|e| e.replicated_ms),
            // Resource Graph shows the resource as it was until this write is indexed.
            indexing: Some(Indexing {
                at_ms: op.done_ms.max(now) + self.graph_lag_ms(),
                previous: existing.as_ref().and_then(|e| {
                    let shown = e.indexing.as_ref().filter(|i| now < i.at_ms);
                    match shown {
                        Some(i) => i.previous.clone(),
                        None => self.view(e, now),
                    }
                }),
            }),
        };
        // The new OS disk's name is held from the check until it is stored.
        let disk_lock = os_disk.as_ref().map(|d| self.lock(&d.id));
        let disk_guard = disk_lock.as_ref().map(|l| l.lock().expect("disk lock"));
        if let Some(refused) = os_disk.as_ref().and_then(|d| self.name_taken(d, now)) {
            return refused;
        }
        if let Err(r) = self.save(&stored) {
            return r;
        }
        if let Err(r) = self.write_inline(id, declared, api) {
            return r;
        }
        if let Some(disk) = os_disk
            && let Err(r) = self.save(&disk)
        {
            return r;
        }
        // Released before the VM's disks are walked (each under its lock).
        drop(disk_guard);
        if is_vm {
            self.attach_disks(&stored);
        }
        let status = match (creating, sync_put_status(&resource_type)) {
            (_, Some(fixed)) => fixed,
            (true, None) => 201,
            (false, None) => 200,
        };
        let loc = Self::location_of(&stored.body);
        let view = self.view(&stored, now).unwrap_or(Value::Null);
        let first = match fam {
            Family::Sync => return Reply::json(status, &view),
            Family::Network | Family::Compute | Family::Generic => Reply::json(status, &view),
            Family::Disk => Reply::json(202, &view),
            Family::Storage => {
                Reply::empty(202).header("content-type", "text/plain; charset=utf-8")
            }
        };
        self.op_headers(req, id, fam, &loc, &op, api, first, false)
    }

    pub(super) fn delete(&self, req: &Request, id: &ResourceId, fail_op: bool) -> Reply {
        let lock = self.lock(id);
        let _g = lock.lock().expect("resource lock");
        let now = now_ms();
        let existing = match self.load(id, now) {
            Ok(Some(e)) => e,
            Ok(None) => return Reply::empty(204),
            Err(r) => return r,
        };
        if let Some(op) = &existing.operation
            && now < op.done_ms
        {
            if op.kind == OpKind::Delete {
                // Deleting already: answer like ARM, with the running operation.
                let fam = family(&existing.resource_type);
                let loc = Self::location_of(&existing.body);
                return self.op_headers(
                    req,
                    id,
                    fam,
                    &loc,
                    op,
                    &existing.api_version,
                    Reply::empty(202),
                    true,
                );
            }
            return Self::busy(op, now, self.retry_after(op.done_ms - now));
        }
        if let Some(refused) = self.attached_elsewhere(&existing, now) {
            return refused;
        }
        let api = query_param(&req.query, "api-version")
            .unwrap_or(&existing.api_version)
            .to_string();
        let fam = family(&existing.resource_type);
        let mut op = self.new_operation(
            id,
            OpKind::Delete,
            delete_seconds(&existing.resource_type),
            fail_op,
            now,
        );
        if existing
            .resource_type
            .eq_ignore_ascii_case("Microsoft.Compute/virtualMachines")
            && op.failure.is_none()
        {
            self.release_vm(id);
            self.release_disks(&existing, &op);
        }
        let shown = existing
            .indexing
            .as_ref()
            .filter(|i| now < i.at_ms)
            .map_or_else(|| self.view(&existing, now), |i| i.previous.clone());
        if delete_is_sync(&existing.resource_type) && !id.is_resource_group() {
            // Synchronous: gone when answered (faults only hit long-running ones).
            op.done_ms = now;
            op.failure = None;
            self.delete_children(id, &op);
            let mut r = existing.clone();
            r.operation = Some(op);
            r.indexing = Some(Indexing {
                at_ms: now + self.graph_lag_ms(),
                previous: shown,
            });
            if let Err(reply) = self.save(&r) {
                return reply;
            }
            return Reply::empty(200);
        }
        let mut r = existing.clone();
        r.operation = Some(op.clone());
        r.indexing = Some(Indexing {
            at_ms: op.done_ms + self.graph_lag_ms(),
            previous: shown,
        });
        if let Err(reply) = self.save(&r) {
            return reply;
        }
        if op.failure.is_none() {
            self.delete_children(id, &op);
        }
        let loc = Self::location_of(&existing.body);
        if id.is_resource_group() {
            // As recorded: 202 + Location (operationresults), no Retry-After.
            return Reply::empty(202).header(
                "Location",
                format!(
                    "{}/subscriptions/{}/operationresults/{}?api-version={api}",
                    req.base,
                    id.subscription(),
                    op.id
                ),
            );
        }
        self.op_headers(req, id, fam, &loc, &op, &api, Reply::empty(202), true)
    }

    /// A VM created from an image gets its OS disk from the platform, as
    /// Azure does: a `Microsoft.Compute/disks` resource beside the VM (named
    /// as `osDisk.name` says, which `server_fields` filled when the client
    /// did not), `managedBy` the VM, untagged (a VM's tags are not copied to
    /// it), and Resource Graph indexes it like any disk (a 200-hospital fleet
    /// has ~5,000). The VM's body then names it (`osDisk.managedDisk.id`)
    /// with the OS type and size, as a recorded `GET` of a created VM shows.
    /// Returns the disk to store on creation; an update keeps what creation
    /// set where the client sends nothing.
    fn os_disk_of(
        &self,
        vm: &ResourceId,
        body: &mut Value,
        existing: Option<&StoredResource>,
        now: u64,
    ) -> Option<StoredResource> {
        const OS: &str = "/properties/storageProfile/osDisk";
        if let Some(e) = existing {
            if body.pointer(OS).is_some() {
                for field in ["managedDisk/id", "osType", "diskSizeGB"] {
                    let pointer = format!("{OS}/{field}");
                    if let Some(v) = e.body.pointer(&pointer)
                        && shape::missing(body, &pointer)
                    {
                        shape::set(body, &pointer, v.clone());
                    }
                }
            }
            return None;
        }
        let os = body.pointer(OS)?;
        if !os
            .get("createOption")
            .and_then(Value::as_str)
            .is_some_and(|c| c.eq_ignore_ascii_case("FromImage"))
        {
            return None;
        }
        let name = os.get("name").and_then(Value::as_str)?.to_string();
        let disk = ResourceId::parse(&format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Compute/disks/{name}",
            vm.subscription(),
            vm.resource_group().unwrap_or_default()
        ))
        .ok()?;
        let image = os_image(body);
        // The gallery image definition says which OS it holds.
        let os_type = image
            .as_ref()
            .and_then(|v| v.parent())
            .and_then(|definition| self.load(&definition, now).ok().flatten())
            .and_then(|d| {
                d.body
                    .pointer("/properties/osType")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_else(|| "Windows".into());
        // A Windows image's OS disk, unless the VM sizes it.
        let size = os.get("diskSizeGB").and_then(Value::as_u64).unwrap_or(127);
        let sku = os
            .pointer("/managedDisk/storageAccountType")
            .and_then(Value::as_str)
            .unwrap_or("Premium_LRS")
            .to_string();
        let encryption = match os
            .pointer("/managedDisk/diskEncryptionSet/id")
            .and_then(Value::as_str)
        {
            Some(des) => {
                json!({"type": "EncryptionAtRestWithCustomerKey", "diskEncryptionSetId": des})
            }
            None => json!({"type": "EncryptionAtRestWithPlatformKey"}),
        };
        let creation = match &image {
            Some(v) => {
                json!({"createOption": "FromImage", "galleryImageReference": {"id": shape::canonical_id(v.as_str())}})
            }
            None => json!({"createOption": "FromImage"}),
        };
        let mut disk_body = json!({
            "location": body.get("location").cloned().unwrap_or(Value::Null),
            "managedBy": shape::canonical_id(vm.as_str()),
            "sku": {"name": sku, "tier": if sku.starts_with("Premium") { "Premium" } else { "Standard" }},
            "properties": {
                "osType": os_type,
                "hyperVGeneration": "V2",
                "creationData": creation,
                "diskSizeGB": size,
                "encryption": encryption,
            },
        });
        if let Some(zones) = body.get("zones") {
            disk_body["zones"] = zones.clone();
        }
        self.server_fields(&disk, &mut disk_body, None, now);
        shape::set(body, &format!("{OS}/osType"), json!(os_type));
        shape::set(body, &format!("{OS}/diskSizeGB"), json!(size));
        shape::set(
            body,
            &format!("{OS}/managedDisk/id"),
            json!(shape::canonical_id(disk.as_str())),
        );
        let resource_type = disk.resource_type();
        let mut stored = StoredResource::new(
            disk,
            resource_type,
            lifeboat_core::api::DISKS.to_string(),
            disk_body,
        );
        // Resource Graph shows it once the create is indexed.
        stored.indexing = Some(Indexing {
            at_ms: now + self.graph_lag_ms(),
            previous: None,
        });
        Some(stored)
    }

    /// A new VM's OS disk may not take the name of a disk that exists: ARM
    /// refuses the create (`409 ConflictingUserInput`; the message is the one
    /// remembered from Azure, "… already exists … Only CreateOption.Attach is
    /// supported.", not found in the stored recordings) rather than replace
    /// what that disk holds.
    fn name_taken(&self, disk: &StoredResource, now: u64) -> Option<Reply> {
        let taken =
            matches!(self.load(&disk.id, now), Ok(Some(ref d)) if self.view(d, now).is_some());
        taken.then(|| {
            Reply::error(
                409,
                "ConflictingUserInput",
                &format!(
                    "Disk {} already exists in resource group {}. Only CreateOption.Attach is supported.",
                    disk.id.name(),
                    disk.id.resource_group().unwrap_or_default().to_ascii_uppercase()
                ),
            )
        })
    }

    /// ARM refuses to delete a disk a VM still holds (`OperationNotAllowed`,
    /// "Disk … is attached to VM …"): it goes with the VM, or once detached.
    fn attached_elsewhere(&self, r: &StoredResource, now: u64) -> Option<Reply> {
        if !r
            .resource_type
            .eq_ignore_ascii_case("Microsoft.Compute/disks")
        {
            return None;
        }
        let holder = r
            .body
            .get("managedBy")
            .and_then(Value::as_str)
            .and_then(|v| ResourceId::parse(v).ok())?;
        let held =
            matches!(self.load(&holder, now), Ok(Some(ref vm)) if self.view(vm, now).is_some());
        held.then(|| {
            Reply::error(
                409,
                "OperationNotAllowed",
                &format!(
                    "Disk {} is attached to VM {}.",
                    r.id.name(),
                    shape::canonical_id(holder.as_str())
                ),
            )
        })
    }

    /// A VM being deleted lets go of its disks: those whose `deleteOption`
    /// is `Delete` go with it (the same operation), the others are detached.
    fn release_disks(&self, vm: &StoredResource, op: &Operation) {
        self.each_disk(vm, |entry, disk| {
            if !disk
                .body
                .get("managedBy")
                .and_then(Value::as_str)
                .is_some_and(|m| m.eq_ignore_ascii_case(vm.id.as_str()))
            {
                return false;
            }
            let goes = entry
                .get("deleteOption")
                .and_then(Value::as_str)
                .is_some_and(|o| o.eq_ignore_ascii_case("Delete"));
            if goes {
                disk.operation = Some(Operation {
                    id: op.id.clone(),
                    kind: OpKind::Delete,
                    started_ms: op.started_ms,
                    done_ms: op.done_ms,
                    failure: None,
                });
            } else if let Some(o) = disk.body.as_object_mut() {
                o.remove("managedBy");
            }
            true
        });
    }

    /// The disks a VM names are `managedBy` it, as ARM records.
    fn attach_disks(&self, vm: &StoredResource) {
        let holder = shape::canonical_id(vm.id.as_str());
        self.each_disk(vm, |_, disk| {
            let held = disk.body.get("managedBy").and_then(Value::as_str) == Some(holder.as_str());
            if !held {
                disk.body["managedBy"] = json!(holder);
            }
            !held
        });
    }

    /// Each stored disk `vm` names (OS disk, then data disks), under its
    /// lock, with the VM's entry for it; stored again when `f` says so.
    fn each_disk(
        &self,
        vm: &StoredResource,
        mut f: impl FnMut(&Value, &mut StoredResource) -> bool,
    ) {
        let profile = vm.body.pointer("/properties/storageProfile");
        let os = profile.and_then(|p| p.get("osDisk")).into_iter();
        let data = profile
            .and_then(|p| p.get("dataDisks"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        for entry in os.chain(data) {
            let Some(id) = entry
                .pointer("/managedDisk/id")
                .and_then(Value::as_str)
                .and_then(|s| ResourceId::parse(s).ok())
            else {
                continue;
            };
            let lock = self.lock(&id);
            let _g = lock.lock().expect("disk lock");
            if let Ok(Some(mut disk)) = self.store.get(&id)
                && f(entry, &mut disk)
            {
                let _ = self.store.put(&disk);
            }
        }
    }

    /// Deleting a resource deletes what lives under it, when it completes.
    pub(super) fn delete_children(&self, id: &ResourceId, op: &Operation) {
        let prefix = format!("{}/", id.key());
        let Ok(all) = self.store.list() else { return };
        for mut child in all.into_iter().filter(|r| r.id.key().starts_with(&prefix)) {
            child.operation = Some(Operation {
                id: op.id.clone(),
                kind: OpKind::Delete,
                started_ms: op.started_ms,
                done_ms: op.done_ms,
                failure: None,
            });
            let _ = self.store.put(&child);
        }
    }
}

/// The gallery image version a VM's OS disk is made from, if any.
fn os_image(vm: &Value) -> Option<ResourceId> {
    vm.pointer("/properties/storageProfile/imageReference/id")
        .and_then(Value::as_str)
        .and_then(|s| ResourceId::parse(s).ok())
}
