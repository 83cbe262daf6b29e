//! Collection reads and tag updates, as ARM serves them: `GET` of a collection
//! (`/subscriptions/S/resourcegroups`, `…/resources`, `…/providers/NS/TYPE` per
//! subscription or group, and a resource's children `<resource>/CHILDTYPE`,
//! including extension collections such as
//! `<resource>/providers/Microsoft.Insights/diagnosticSettings`) answered
//! `{"value":[…],"nextLink":…}` a page at a time; `PATCH` of tags.
//!
//! Reads only what the store holds; never creates or deletes a resource.

use super::*;

/// Items per page (ARM's pages vary by provider; small pages make clients follow
/// `nextLink`, as they must on Azure).
const PAGE: usize = 100;

/// What a collection path names.
enum Collection {
    Groups {
        sub: String,
    },
    /// Resources of a subscription or group, optionally of one type.
    Tracked {
        sub: String,
        rg: Option<String>,
        rtype: Option<String>,
    },
    Children {
        parent: ResourceId,
        rtype: String,
        /// An id of one item, to judge the api-version by.
        probe: ResourceId,
    },
}

fn parse(path: &str) -> Option<Collection> {
    let segs: Vec<&str> = path.split('/').collect();
    let is = |i: usize, w: &str| segs.get(i).is_some_and(|s| s.eq_ignore_ascii_case(w));
    if !is(1, "subscriptions") || segs.len() < 4 {
        return None;
    }
    let sub = segs[2].to_string();
    match segs.len() {
        4 if is(3, "resourcegroups") => return Some(Collection::Groups { sub }),
        4 if is(3, "resources") => {
            return Some(Collection::Tracked {
                sub,
                rg: None,
                rtype: None,
            });
        }
        6 if is(3, "providers") => {
            return Some(Collection::Tracked {
                sub,
                rg: None,
                rtype: Some(format!("{}/{}", segs[4], segs[5])),
            });
        }
        6 if is(3, "resourcegroups") && is(5, "resources") => {
            return Some(Collection::Tracked {
                sub,
                rg: Some(segs[4].to_string()),
                rtype: None,
            });
        }
        8 if is(3, "resourcegroups") && is(5, "providers") => {
            return Some(Collection::Tracked {
                sub,
                rg: Some(segs[4].to_string()),
                rtype: Some(format!("{}/{}", segs[6], segs[7])),
            });
        }
        _ => {}
    }
    // An extension collection: `<scope>/providers/NS/TYPE`.
    let n = segs.len();
    if n > 3 && segs[n - 3].eq_ignore_ascii_case("providers") {
        let parent = ResourceId::parse(&segs[..n - 3].join("/")).ok()?;
        let probe = ResourceId::parse(&format!("{path}/x")).ok()?;
        return Some(Collection::Children {
            parent,
            rtype: format!("{}/{}", segs[n - 2], segs[n - 1]),
            probe,
        });
    }
    let parent = ResourceId::parse(&segs[..n - 1].join("/")).ok()?;
    let rtype = format!("{}/{}", parent.resource_type(), segs[n - 1]);
    let probe = parent.child(segs[n - 1], "x");
    Some(Collection::Children {
        parent,
        rtype,
        probe,
    })
}

/// A type with one segment after its namespace: what `…/resources` lists.
fn top_level(t: &str) -> bool {
    t.matches('/').count() == 1 && !t.eq_ignore_ascii_case("Microsoft.Resources/resourceGroups")
}

impl Emulator {
    pub(super) fn collection(&self, req: &Request, path: &str, api: &str) -> Reply {
        let Some(what) = parse(path) else {
            return Reply::error(
                400,
                "InvalidResourceId",
                &format!("`{path}` is not a resource or collection path"),
            );
        };
        let now = now_ms();
        let probe = |t: &str, scope: &str| {
            ResourceId::parse(&format!("{scope}/providers/{t}/x"))
                .map_err(|e| Reply::error(400, "InvalidResourceId", &e.to_string()))
        };
        let items: Vec<StoredResource> = match &what {
            Collection::Groups { sub } => {
                let probe = ResourceId::parse(&format!("/subscriptions/{sub}/resourceGroups/x"))
                    .expect("a group id");
                if let Err(r) = rules::check_api_version(&probe, api) {
                    return r;
                }
                self.scanned(|r| {
                    r.id.is_resource_group() && r.id.subscription().eq_ignore_ascii_case(sub)
                })
            }
            Collection::Tracked { sub, rg, rtype } => {
                let scope = match rg {
                    Some(g) => format!("/subscriptions/{sub}/resourceGroups/{g}"),
                    None => format!("/subscriptions/{sub}"),
                };
                if let Some(t) = rtype {
                    match probe(t, &scope) {
                        Ok(id) => {
                            if let Err(r) = rules::check_api_version(&id, api) {
                                return r;
                            }
                        }
                        Err(r) => return r,
                    }
                }
                if let Some(g) = rg
                    && let Ok(group) = ResourceId::parse(&scope)
                    && let Some(missing) = self.group_missing(&group, g)
                {
                    return missing;
                }
                self.scanned(|r| {
                    r.id.subscription().eq_ignore_ascii_case(sub)
                        && rg.as_ref().is_none_or(|g| {
                            r.id.resource_group()
                                .is_some_and(|x| x.eq_ignore_ascii_case(g))
                        })
                        && match rtype {
                            Some(t) => r.resource_type.eq_ignore_ascii_case(t),
                            None => top_level(&r.resource_type),
                        }
                })
            }
            Collection::Children {
                parent,
                rtype,
                probe,
            } => {
                if let Err(r) = rules::check_api_version(probe, api) {
                    return r;
                }
                // From the shared snapshot: a list costs its own items, not a
                // directory read per child, nor a view of its parent and group
                // (only whether they exist: a fleet's plan makes thousands).
                let snap = match self.store.scan() {
                    Ok(s) => s,
                    Err(e) => return Reply::error(500, "InternalServerError", &e.to_string()),
                };
                if let Some(rg) = parent.resource_group()
                    && let Ok(group) = ResourceId::parse(&format!(
                        "/subscriptions/{}/resourceGroups/{rg}",
                        parent.subscription()
                    ))
                    && !snap.get(&group).is_some_and(|g| shown(g, now))
                {
                    return Self::not_found(&group);
                }
                if !snap.get(parent).is_some_and(|p| shown(p, now)) {
                    return Self::not_found(parent);
                }
                snap.children_shared(parent)
                    .into_iter()
                    .filter(|r| r.resource_type.eq_ignore_ascii_case(rtype))
                    .map(|r| r.as_ref().clone())
                    .collect()
            }
        };
        let mut values: Vec<Value> = items.iter().filter_map(|r| self.view(r, now)).collect();
        let skip = query_param(&req.query, "$skiptoken")
            .and_then(|s| s.parse::<usize>().ok())
            .unwrap_or(0);
        let top = query_param(&req.query, "$top")
            .and_then(|s| s.parse::<usize>().ok())
            .map_or(PAGE, |t| t.clamp(1, PAGE));
        let more = skip + top < values.len();
        let page: Vec<Value> = values.drain(..).skip(skip).take(top).collect();
        // Moved in: `json!` would serialize the page into a copy.
        let mut out = json!({});
        out["value"] = Value::Array(page);
        if more {
            out["nextLink"] = json!(format!(
                "{}{path}?api-version={api}&$top={top}&$skiptoken={}",
                req.base,
                skip + top
            ));
        }
        Reply::json(200, &out)
    }

    /// Every stored resource matching `keep`, from one scan of the store.
    fn scanned(&self, keep: impl Fn(&StoredResource) -> bool) -> Vec<StoredResource> {
        self.store
            .scan()
            .map(|all| all.iter().filter(|r| keep(r)).cloned().collect())
            .unwrap_or_default()
    }

    /// `PATCH` with `{"tags": {…}}`: the tags are replaced, nothing else changes.
    pub(super) fn patch(&self, req: &Request, id: &ResourceId) -> Reply {
        let patch = match Self::object_body(req) {
            Ok(v) => v,
            Err(refused) => return refused,
        };
        let lock = self.lock(id);
        let _g = lock.lock().expect("resource lock");
        let now = now_ms();
        let mut r = match self.load(id, now) {
            Ok(Some(r)) if self.view(&r, now).is_some() => r,
            Ok(_) => return Self::not_found(id),
            Err(e) => return e,
        };
        if let Some(op) = &r.operation
            && now < op.done_ms
        {
            return Self::busy(op, now, self.retry_after(op.done_ms - now));
        }
        let previous = self.view(&r, now);
        if let Some(tags) = patch.get("tags") {
            r.body["tags"] = tags.clone();
        }
        r.indexing = Some(Indexing {
            at_ms: now + self.graph_lag_ms(),
            previous,
        });
        if let Err(e) = self.save(&r) {
            return e;
        }
        Reply::json(200, &self.view(&r, now).unwrap_or(Value::Null))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collection_paths() {
        assert!(matches!(
            parse("/subscriptions/s/resourcegroups"),
            Some(Collection::Groups { .. })
        ));
        assert!(matches!(
            parse("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks"),
            Some(Collection::Tracked {
                rg: Some(_),
                rtype: Some(_),
                ..
            })
        ));
        match parse(
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets",
        ) {
            Some(Collection::Children { rtype, .. }) => {
                assert_eq!(rtype, "Microsoft.Network/virtualNetworks/subnets")
            }
            _ => panic!("children"),
        }
        match parse(
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/k/providers/Microsoft.Insights/diagnosticSettings",
        ) {
            Some(Collection::Children { rtype, parent, .. }) => {
                assert_eq!(rtype, "Microsoft.Insights/diagnosticSettings");
                assert_eq!(parent.name(), "k");
            }
            _ => panic!("extension collection"),
        }
    }
}
