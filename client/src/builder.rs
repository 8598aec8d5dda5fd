//! Building check requests without spelling out the wire types.

use serde_json::{Map, Value as Json};
use warden_proto::convert::to_struct;
use warden_proto::v1::{
    Action, Agent, ApprovalRef, CheckRequest, Principal, Resource, SearchActionsRequest,
    SearchResourcesRequest, SearchSubjectsRequest,
};

/// Builds a `CheckRequest`. The principal is a user unless
/// `principal_type` says otherwise.
#[derive(Debug, Clone)]
pub struct CheckBuilder {
    request: CheckRequest,
    agent_attributes: Map<String, Json>,
    principal_attributes: Map<String, Json>,
    action_attributes: Map<String, Json>,
    resource_attributes: Map<String, Json>,
    context: Map<String, Json>,
}

impl CheckBuilder {
    /// The required fields: who asks, which agent, for whom, what, on what
    /// kind of resource.
    pub fn new(
        platform: impl Into<String>,
        agent_id: impl Into<String>,
        principal_id: impl Into<String>,
        action: impl Into<String>,
        resource_type: impl Into<String>,
    ) -> Self {
        Self {
            request: CheckRequest {
                platform: platform.into(),
                agent: Some(Agent {
                    id: agent_id.into(),
                    attributes: None,
                }),
                principal: Some(Principal {
                    r#type: "user".into(),
                    id: principal_id.into(),
                    attributes: None,
                }),
                delegation_chain: Vec::new(),
                audience: Vec::new(),
                action: Some(Action {
                    name: action.into(),
                    attributes: None,
                }),
                resource: Some(Resource {
                    r#type: resource_type.into(),
                    id: String::new(),
                    attributes: None,
                }),
                context: None,
                request_id: String::new(),
                approval: None,
            },
            agent_attributes: Map::new(),
            principal_attributes: Map::new(),
            action_attributes: Map::new(),
            resource_attributes: Map::new(),
            context: Map::new(),
        }
    }

    pub fn principal_type(mut self, kind: impl Into<String>) -> Self {
        if let Some(principal) = self.request.principal.as_mut() {
            principal.r#type = kind.into();
        }
        self
    }

    pub fn resource_id(mut self, id: impl Into<String>) -> Self {
        if let Some(resource) = self.request.resource.as_mut() {
            resource.id = id.into();
        }
        self
    }

    pub fn request_id(mut self, id: impl Into<String>) -> Self {
        self.request.request_id = id.into();
        self
    }

    /// Appends an actor to the delegation chain (outermost first).
    pub fn delegated_by(mut self, actor: impl Into<String>) -> Self {
        self.request.delegation_chain.push(actor.into());
        self
    }

    /// Adds who will see what the action produces: `user:ID`, `group:ID`,
    /// `public` or `external:DOMAIN`.
    pub fn audience(mut self, entry: impl Into<String>) -> Self {
        self.request.audience.push(entry.into());
        self
    }

    pub fn agent_attribute(mut self, key: impl Into<String>, value: Json) -> Self {
        self.agent_attributes.insert(key.into(), value);
        self
    }

    pub fn principal_attribute(mut self, key: impl Into<String>, value: Json) -> Self {
        self.principal_attributes.insert(key.into(), value);
        self
    }

    pub fn action_attribute(mut self, key: impl Into<String>, value: Json) -> Self {
        self.action_attributes.insert(key.into(), value);
        self
    }

    pub fn resource_attribute(mut self, key: impl Into<String>, value: Json) -> Self {
        self.resource_attributes.insert(key.into(), value);
        self
    }

    pub fn context(mut self, key: impl Into<String>, value: Json) -> Self {
        self.context.insert(key.into(), value);
        self
    }

    /// Carries an approval a person gave for exactly this request: the
    /// `approval` of the approved task (`WardenClient::get_approval_task`),
    /// unchanged. Everything else must be as it was when approval was asked
    /// for, or the check is denied.
    pub fn approval(mut self, approval: ApprovalRef) -> Self {
        self.request.approval = Some(approval);
        self
    }

    pub fn build(self) -> CheckRequest {
        let attributes = |map: Map<String, Json>| (!map.is_empty()).then(|| to_struct(map));
        let mut request = self.request;
        if let Some(agent) = request.agent.as_mut() {
            agent.attributes = attributes(self.agent_attributes);
        }
        if let Some(principal) = request.principal.as_mut() {
            principal.attributes = attributes(self.principal_attributes);
        }
        if let Some(action) = request.action.as_mut() {
            action.attributes = attributes(self.action_attributes);
        }
        if let Some(resource) = request.resource.as_mut() {
            resource.attributes = attributes(self.resource_attributes);
        }
        request.context = attributes(self.context);
        request
    }

    /// Which of `candidates` (action names; empty to have Warden propose
    /// them) this check's agent may take on its resource for its
    /// principal. The builder's action is ignored.
    pub fn search_actions(self, candidates: Vec<String>) -> SearchActionsRequest {
        let request = self.build();
        SearchActionsRequest {
            platform: request.platform,
            agent: request.agent,
            principal: request.principal,
            delegation_chain: request.delegation_chain,
            resource: request.resource,
            context: request.context,
            request_id: request.request_id,
            candidates,
            page: None,
            audience: request.audience,
        }
    }

    /// Which resources of the builder's resource type the agent may take
    /// its action on for its principal. The resource id is ignored.
    pub fn search_resources(self) -> SearchResourcesRequest {
        let request = self.build();
        SearchResourcesRequest {
            platform: request.platform,
            agent: request.agent,
            principal: request.principal,
            delegation_chain: request.delegation_chain,
            action: request.action,
            resource_type: request.resource.map(|r| r.r#type).unwrap_or_default(),
            context: request.context,
            request_id: request.request_id,
            page: None,
            audience: request.audience,
        }
    }

    /// Which principals (of the builder's principal type) the agent may
    /// act for, taking its action on its resource. The principal id is
    /// ignored.
    pub fn search_subjects(self) -> SearchSubjectsRequest {
        let request = self.build();
        SearchSubjectsRequest {
            platform: request.platform,
            agent: request.agent,
            subject_type: request.principal.map(|p| p.r#type).unwrap_or_default(),
            delegation_chain: request.delegation_chain,
            action: request.action,
            resource: request.resource,
            context: request.context,
            request_id: request.request_id,
            page: None,
            audience: request.audience,
        }
    }
}
