//! Compute actions: the VM instance view, power actions (start, deallocate),
//! runCommand (the SQL restore-mode simulation) and Image Builder runs that
//! produce gallery image versions.

use super::*;

impl Emulator {
    pub(super) fn instance_view(&self, id: &ResourceId) -> Reply {
        let now = now_ms();
        match self.load(id, now) {
            Ok(Some(r)) => match self.view(&r, now) {
                Some(v) => Reply::json(200, &self.instance_view_of(&r, &v, now)),
                None => Self::not_found(id),
            },
            Ok(None) => Self::not_found(id),
            Err(r) => r,
        }
    }

    /// A VM's instance view, as `GET …/instanceView` and `$expand=instanceView`
    /// return it.
    pub(super) fn instance_view_of(&self, r: &StoredResource, view: &Value, now: u64) -> Value {
        let state = view
            .pointer("/properties/provisioningState")
            .and_then(Value::as_str)
            .unwrap_or("Succeeded");
        let power = self.power(r, now).unwrap_or_else(|| "running".into());
        let display = match power.as_str() {
            "running" => "VM running",
            "deallocated" => "VM deallocated",
            "deallocating" => "VM deallocating",
            "starting" => "VM starting",
            "stopped" => "VM stopped",
            _ => "VM updating",
        };
        json!({
            "computerName": view.pointer("/properties/osProfile/computerName").cloned().unwrap_or(json!(r.id.name())),
            "statuses": [
                {"code": format!("ProvisioningState/{}", state.to_ascii_lowercase()), "level": "Info",
                 "displayStatus": format!("Provisioning {}", state.to_ascii_lowercase())},
                {"code": format!("PowerState/{power}"), "level": "Info", "displayStatus": display},
            ]
        })
    }

    /// The resource, if it exists and no operation runs on it (the caller holds
    /// its lock).
    pub(super) fn idle(&self, id: &ResourceId, now: u64) -> Result<StoredResource, Reply> {
        let r = self.load(id, now)?.ok_or_else(|| Self::not_found(id))?;
        if let Some(op) = &r.operation
            && now < op.done_ms
        {
            return Err(Self::busy(op, now, self.retry_after(op.done_ms - now)));
        }
        Ok(r)
    }

    pub(super) fn vm_action(
        &self,
        req: &Request,
        id: &ResourceId,
        action: &str,
        fail_op: bool,
    ) -> Reply {
        let lock = self.lock(id);
        let _g = lock.lock().expect("resource lock");
        let now = now_ms();
        let mut r = match self.idle(id, now) {
            Ok(r) => r,
            Err(reply) => return reply,
        };
        let (power, secs, output) = match action {
            "start" => (Some("running"), 60.0, None),
            "deallocate" => (Some("deallocated"), 60.0, None),
            "poweroff" => (Some("stopped"), 30.0, None),
            "restart" => (Some("running"), 90.0, None),
            "runcommand" => {
                if r.power.as_deref() != Some("running") {
                    return Reply::error(
                        409,
                        "OperationNotAllowed",
                        "Operation 'runCommand' is not allowed since the VM is not running.",
                    );
                }
                let out = match crate::sql::run_command(
                    &mut r,
                    &req.body,
                    now,
                    self.cfg.time_scale,
                    self.cfg.faults.shipping_stop_s,
                ) {
                    Ok(o) => o,
                    Err(msg) => return Reply::error(400, "InvalidParameter", &msg),
                };
                (None, 30.0, Some(out))
            }
            other => {
                return Reply::error(
                    404,
                    "InvalidResourceType",
                    &format!("The resource type 'virtualMachines/{other}' could not be found."),
                );
            }
        };
        let mut op = self.new_operation(
            id,
            OpKind::Action {
                name: action.to_string(),
                power: power.map(str::to_string),
                output,
            },
            secs,
            fail_op,
            now,
        );
        // No capacity for the size in the region: the start is accepted and its
        // operation fails, as Azure reports it.
        if action == "start"
            && op.failure.is_none()
            && capacity::allocation_fails(self.seed, id, self.cfg.faults.alloc_fail)
        {
            op.failure = Some((
                "AllocationFailed".into(),
                "Allocation failed. We do not have sufficient capacity for the requested VM size in this region. Read more about improving likelihood of allocation success at http://aka.ms/allocation-guidance".into(),
            ));
        }
        r.operation = Some(op.clone());
        if let Err(reply) = self.save(&r) {
            return reply;
        }
        let api = query_param(&req.query, "api-version")
            .unwrap_or(&r.api_version)
            .to_string();
        let loc = Self::location_of(&r.body);
        self.op_headers(
            req,
            id,
            Family::Compute,
            &loc,
            &op,
            &api,
            Reply::empty(202),
            true,
        )
    }

    /// Azure Image Builder `run`: the build takes ~40 min; when it succeeds its
    /// distributor's gallery image version appears (tagged with `artifactTags`) and
    /// replicates to the other target regions in ~15 min more. A failed build
    /// (`--faults lro-fail`) reports Image Builder's error and creates nothing.
    pub(super) fn template_action(
        &self,
        req: &Request,
        id: &ResourceId,
        action: &str,
        fail_op: bool,
    ) -> Reply {
        if action != "run" {
            return Reply::error(
                404,
                "InvalidResourceType",
                &format!("The resource type 'imageTemplates/{action}' could not be found."),
            );
        }
        let lock = self.lock(id);
        let _g = lock.lock().expect("resource lock");
        let now = now_ms();
        let mut t = match self.idle(id, now) {
            Ok(t) => t,
            Err(reply) => return reply,
        };
        let dist = t
            .body
            .pointer("/properties/distribute/0")
            .cloned()
            .unwrap_or(Value::Null);
        let Some(version) = dist
            .get("galleryImageId")
            .and_then(Value::as_str)
            .and_then(|s| ResourceId::parse(s).ok())
        else {
            return Reply::error(
                400,
                "InvalidParameter",
                "distribute[0].galleryImageId must name a gallery image version",
            );
        };
        let kind = OpKind::Action {
            name: "run".into(),
            power: None,
            output: None,
        };
        let mut op = self.new_operation(id, kind, IMAGE_BUILD_SECS, false, now);
        if fail_op {
            op.failure = Some((
                "ImageTemplateRunFailed".into(),
                "Build failed: customization 'install-hix' (PowerShell) exited with code 1603 (fatal error during installation); see packerlogs/customization.log in the staging resource group's storage account".into(),
            ));
        } else {
            let regions = dist
                .get("targetRegions")
                .cloned()
                .unwrap_or_else(|| json!([]));
            let v = StoredResource {
                id: version,
                resource_type: lifeboat_core::api::IMAGE_VERSION_TYPE.to_string(),
                api_version: lifeboat_core::api::GALLERY.into(),
                body: json!({
                    "location": t.body.get("location").cloned().unwrap_or(json!("westeurope")),
                    "tags": dist.get("artifactTags").cloned().unwrap_or(json!({})),
                    "properties": {
                        "publishingProfile": {
                            "targetRegions": regions,
                            "excludeFromLatest": dist.get("excludeFromLatest").cloned().unwrap_or(json!(false)),
                            "publishedDate": rfc3339(op.done_ms),
                        },
                        "storageProfile": {"source": {"id": id.as_str()}},
                    }
                }),
                operation: None,
                power: None,
                sql_mode: None,
                shipping: None,
                visible_from_ms: Some(op.done_ms),
                replicated_ms: Some(op.done_ms + self.scaled_ms(REPLICATION_SECS)),
                indexing: Some(Indexing {
                    at_ms: op.done_ms + self.graph_lag_ms(),
                    previous: None,
                }),
            };
            if let Err(reply) = self.save(&v) {
                return reply;
            }
        }
        t.operation = Some(op.clone());
        if let Err(reply) = self.save(&t) {
            return reply;
        }
        let api = query_param(&req.query, "api-version")
            .unwrap_or(&t.api_version)
            .to_string();
        let loc = Self::location_of(&t.body);
        self.op_headers(
            req,
            id,
            Family::Generic,
            &loc,
            &op,
            &api,
            Reply::empty(202),
            true,
        )
    }
}
