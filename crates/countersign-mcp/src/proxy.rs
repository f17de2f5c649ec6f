//! The agent-facing MCP server: one flat view of all upstreams, where every request that
//! reaches an upstream with more than a listing (`tools/call`, `resources/read`,
//! `prompts/get`, `completion/complete`, `resources/subscribe`/`unsubscribe`) is an action
//! under policy (`actions::Planned`), and what is forwarded is rebuilt from the recorded action
//! (`actions::forward`), never taken from the agent's request; how it went is recorded after
//! the agent has its answer (`outcomes`). Listings pass through, with the built-in server's
//! tools (the executors, `builtin`) added.

use super::Mcp;
use super::actions::{self, Forward, Planned};
use super::answers::{refused_error, refused_meta, tool_error, upstream_error};
use super::authorize::{Carrier, Submitted, authorize, parking_key, settle, submit};
use super::builtin;
use super::caller::{self, META_JUSTIFICATION, action, caller, meta_of};
use super::conform;
use super::elicit;
use super::forward::forward_call;
use super::hub::Change;
use super::naming;
use super::outcomes::Forwarding;
use super::tasks;
use super::upstream::{Upstream, UpstreamError};
use countersign_core::State;
use futures::future::join_all;
use rmcp::model::SubscriptionFilter;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CancelTaskParams, CompleteRequestParams,
    CompleteResult, CustomRequest, CustomResult, GetPromptRequestParams, GetPromptResponse,
    GetTaskParams, GetTaskResult, Implementation, InitializeResult, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ReadResourceRequestParams, ReadResourceResponse, Reference, RequestMetaObject,
    ServerCapabilities, SubscribeRequestParams, UnsubscribeRequestParams,
};
use rmcp::service::{
    NotificationContext, RequestContext, ServiceError, SubscriptionContext, SubscriptionSendError,
};
use rmcp::{ErrorData, Peer, RoleClient, RoleServer, ServerHandler};
use std::sync::Arc;

/// One agent session (or one request, for stateless clients).
pub struct Session {
    pub mcp: Arc<Mcp>,
}

impl Session {
    fn upstream(&self, server: &str) -> Option<&Arc<Upstream>> {
        self.mcp.upstream(server)
    }

    /// Asks every upstream at once. Upstreams that do not offer the method are left out
    /// quietly; failing ones are left out with a warning.
    async fn ask_every<T, F, Fut>(&self, method: &str, ask: F) -> Vec<(&Arc<Upstream>, T)>
    where
        F: Fn(Peer<RoleClient>) -> Fut,
        Fut: std::future::Future<Output = Result<T, ServiceError>>,
    {
        let ask = &ask;
        let answers = join_all(
            self.mcp
                .upstreams
                .iter()
                .map(|u| async move { (u, u.request(ask).await) }),
        )
        .await;
        let mut out = vec![];
        for (u, got) in answers {
            match got {
                Ok(value) => out.push((u, value)),
                Err(UpstreamError::Protocol(_)) => {}
                Err(e) => tracing::warn!(upstream = %u.name, error = %e, "{method} failed"),
            }
        }
        out
    }

    /// The upstream serving `uri`, or the error for a resource nobody offers.
    async fn routed(&self, uri: &str) -> Result<Arc<Upstream>, ErrorData> {
        self.owner_of(uri)
            .await
            .ok_or_else(|| ErrorData::resource_not_found(format!("unknown resource `{uri}`"), None))
    }

    /// The one gate for every upstream-bound request but `tools/call` (which may answer with a
    /// task instead of waiting): `planned` is submitted under policy, waited on while people
    /// decide, and its grant redeemed; what comes back is the request rebuilt from the
    /// recorded action, the upstream it names, and the record of its forwarding (to
    /// [`Forwarding::finish`] with the upstream's answer).
    async fn authorized(
        &self,
        planned: Planned,
        meta: Option<&RequestMetaObject>,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<(Arc<Upstream>, Forward, Forwarding), ErrorData> {
        let caller = caller(ctx, meta)?;
        let body = action(planned, &caller, meta_of(meta, ctx, META_JUSTIFICATION));
        let mut hold = caller::hold(&self.mcp.liveness, ctx);
        let holding = self.mcp.holding(&caller.who.id);
        let approved = countersign_app::trace::scope(
            caller::trace_of(meta, ctx),
            authorize(
                &self.mcp.gateway,
                &caller.who,
                body,
                holding,
                caller.session_run,
                &mut hold,
            ),
        )
        .await
        .map_err(refused_error)?;
        let (upstream, forward) = self.mcp.forward_of(&approved)?;
        let forwarding = Forwarding::start(&self.mcp.gateway, approved, &upstream.name);
        Ok((upstream, forward, forwarding))
    }

    /// The upstream that serves `uri`: the one that listed it, else the one whose template
    /// covers it, else the only upstream with resources.
    async fn owner_of(&self, uri: &str) -> Option<Arc<Upstream>> {
        if let Some(u) = self.mcp.resource_owner(uri) {
            return Some(u);
        }
        // Learn the listings once, then ask again.
        self.list_all_resources().await;
        self.list_all_templates().await;
        self.mcp.resource_owner(uri)
    }

    async fn list_all_resources(&self) -> Vec<rmcp::model::Resource> {
        let mut out = vec![];
        for (u, resources) in self
            .ask_every("resources/list", |peer| async move {
                peer.list_all_resources().await
            })
            .await
        {
            self.mcp
                .learn_resources(&u.name, resources.iter().map(|r| r.uri.as_str()));
            out.extend(resources);
        }
        out
    }

    async fn list_all_templates(&self) -> Vec<rmcp::model::ResourceTemplate> {
        let mut out = vec![];
        for (u, templates) in self
            .ask_every("resources/templates/list", |peer| async move {
                peer.list_all_resource_templates().await
            })
            .await
        {
            self.mcp
                .learn_templates(&u.name, templates.iter().map(|t| t.uri_template.as_str()));
            out.extend(templates);
        }
        out
    }

    /// `tools/call` in its trace: asked about (and answered with a task if it waits and the
    /// client takes tasks), waited on, then forwarded (or run by an executor).
    async fn call_tool_traced(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let caller = caller(&ctx, request.meta.as_ref())?;

        let unknown = || {
            ErrorData::invalid_params(
                format!(
                    "unknown tool `{}`; tools are named <server>__<tool> (see tools/list)",
                    request.name
                ),
                None,
            )
        };
        let (server, tool) = naming::split(&request.name).ok_or_else(unknown)?;
        // A retry on 2026-07-28 answering the gateway's own URL elicitation (`elicit`).
        let answered = elicit::answered(
            request.input_responses.as_ref(),
            request.request_state.as_deref(),
        )?;
        let justification = meta_of(request.meta.as_ref(), &ctx, META_JUSTIFICATION);
        let (body, carrier) = if server == naming::BUILTIN {
            let run = caller.run.clone();
            let asked = builtin::action(
                &self.mcp.gateway,
                tool,
                request.arguments,
                justification,
                run,
            );
            match asked {
                Ok(body) => (body, Carrier::Executor),
                Err(refused) => {
                    return Ok(tool_error(refused.message.clone(), refused_meta(&refused)));
                }
            }
        } else {
            let upstream = self.upstream(server).ok_or_else(unknown)?.clone();
            // Ask people only about tools that exist.
            // Its annotations as the latest listing gives them: recorded in the action (so in
            // its digest), for the policy to read; changed annotations make another action.
            let annotations = match upstream.tools().await {
                Ok(tools) => match tools.iter().find(|t| t.name == tool) {
                    Some(t) => naming::annotation_labels(t.annotations.as_ref()),
                    None => return Err(unknown()),
                },
                Err(e) => return Ok(tool_error(e.to_string(), None)),
            };
            let planned = Planned::tool_call(server, tool, request.arguments);
            let mut body = action(planned, &caller, justification);
            body.labels = annotations;
            (body, Carrier::Forward)
        };
        let holding = self.mcp.holding(&caller.who.id);
        let key = parking_key(holding, &caller.who, &body, caller.session_run);
        let gateway = &self.mcp.gateway;
        let submitted = match &answered {
            // Answered from the request it names, never asking people again.
            Some(answered) => {
                let request =
                    elicit::resume(gateway, &caller.who, answered, &body, caller.session_run)
                        .await?;
                Submitted {
                    request,
                    parked: key,
                    carrier,
                }
            }
            None => match submit(gateway, &caller.who, body, key, carrier).await {
                Ok(submitted) => submitted,
                Err(refused) => {
                    let meta = refused_meta(&refused);
                    return Ok(tool_error(refused.message, meta));
                }
            },
        };
        let pending = submitted.request.state() == State::Pending;
        let tasks_ok = ctx
            .client_capabilities()
            .is_some_and(|c| c.supports_tasks());
        if pending && tasks_ok {
            return Ok(tasks::begin(&self.mcp, &caller.who, submitted).await);
        }
        let elicitation = elicit::mode(&ctx);
        if pending && elicitation == elicit::Mode::Rounds && answered.is_none() {
            let asked = elicit::input_required(gateway, &submitted.request);
            return Ok(CallToolResponse::InputRequired(asked));
        }
        let asking = (pending && elicitation == elicit::Mode::Session)
            .then(|| elicit::Asking::start(gateway, &ctx.peer, &submitted.request));
        let declined = asking
            .as_ref()
            .map(elicit::Asking::declined)
            .unwrap_or_default();
        if answered.as_ref().is_some_and(|a| a.declined) {
            declined.cancel();
        }
        let mut hold = elicit::ElicitHold::new(caller::hold(&self.mcp.liveness, &ctx), declined);
        let settled = settle(gateway, &caller.who, submitted, holding, &mut hold).await;
        if let Some(asking) = asking {
            let decided = match &settled {
                Ok(_) => true,
                Err(refused) => !matches!(refused.state, Some(State::Pending | State::Approved)),
            };
            asking.finish(decided).await;
        }
        let approved = match settled {
            Ok(req) => req,
            Err(refused) => {
                let meta = refused_meta(&refused);
                return Ok(tool_error(refused.message, meta));
            }
        };
        if carrier == Carrier::Executor {
            return Ok(builtin::execute(&self.mcp.gateway, &caller.who, &approved)
                .await
                .into());
        }
        // The only thing added to the recorded call: our own progress token, routed back.
        let route = ctx
            .meta
            .get_progress_token()
            .map(|token| self.mcp.hub.route_progress(ctx.peer.clone(), token));
        let meta = route
            .as_ref()
            .map(|r| RequestMetaObject::with_progress_token(r.token.clone()));
        forward_call(&self.mcp, approved, meta).await
    }
}

impl ServerHandler for Session {
    fn get_info(&self) -> InitializeResult {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .enable_resources()
            .enable_resources_list_changed()
            .enable_resources_subscribe()
            .enable_prompts()
            .enable_prompts_list_changed()
            .enable_completions()
            .enable_tasks()
            .build();
        let mut info = InitializeResult::new(capabilities);
        info.server_info = Implementation::new("countersign", env!("CARGO_PKG_VERSION"));
        info.instructions = Some(
            "Countersign gateway. Tools are named <server>__<tool>. Every tool call is checked \
             against policy: it runs at once, is refused with the reason, or waits until a \
             person approves exactly these arguments. Say why in _meta \
             \"io.countersign/justification\"."
                .into(),
        );
        if !self.mcp.gateway.executors().list().is_empty() {
            info.instructions = info.instructions.map(|text| {
                text + " Tools named countersign__<executor> are the gateway's own: it runs \
                        them with credentials it holds, once approved, and answers with the \
                        outcome."
            });
        }
        info
    }

    async fn on_initialized(&self, ctx: NotificationContext<RoleServer>) {
        // Pass the upstreams' "list changed" announcements on to this session.
        let mut changes = self.mcp.hub.subscribe();
        let peer = ctx.peer.clone();
        tokio::spawn(async move {
            loop {
                let change = tokio::select! {
                    c = changes.recv() => c,
                    () = tokio::time::sleep(std::time::Duration::from_secs(30)) => {
                        if peer.is_transport_closed() { break; }
                        continue;
                    }
                };
                let sent = match change {
                    Ok(Change::Tools) => peer.notify_tool_list_changed().await,
                    Ok(Change::Resources) => peer.notify_resource_list_changed().await,
                    Ok(Change::Prompts) => peer.notify_prompt_list_changed().await,
                    Ok(Change::ResourceUpdated(p)) => peer.notify_resource_updated(p).await,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => Ok(()),
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                };
                if sent.is_err() {
                    break;
                }
            }
        });
    }

    /// Agents on 2026-07-28 have no session to be told of list changes on: they ask with
    /// `subscriptions/listen`. List changes carry names only and pass through; updates of a
    /// resource's content are left out (on older protocols they need `resources/subscribe`, an
    /// action under policy, and there is no such action for a 2026 subscription).
    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        let mut accepted = requested.clone();
        accepted.resource_subscriptions = None;
        Some(accepted)
    }

    /// `tasks/result`, for clients on the tasks of protocol 2025-11-25 (`tasks::result`); every
    /// other method nobody implements is "method not found".
    async fn on_custom_request(
        &self,
        request: CustomRequest,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CustomResult, ErrorData> {
        if request.method != "tasks/result" {
            return Err(ErrorData::new(
                rmcp::model::ErrorCode::METHOD_NOT_FOUND,
                request.method,
                None,
            ));
        }
        let caller = caller(&ctx, None)?;
        let id = request
            .params
            .as_ref()
            .and_then(|p| p.get("taskId"))
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| ErrorData::invalid_params("tasks/result needs a taskId", None))?;
        let hold = caller::hold(&self.mcp.liveness, &ctx);
        let result = tasks::result(&self.mcp, &caller.who, id, &hold).await?;
        Ok(CustomResult::new(serde_json::Value::Object(result)))
    }

    async fn listen(&self, subscription: SubscriptionContext) -> Result<(), ErrorData> {
        let mut changes = self.mcp.hub.subscribe();
        let sink = subscription.sink();
        loop {
            let change = tokio::select! {
                () = subscription.cancelled() => return Ok(()),
                change = changes.recv() => change,
            };
            let sent = match change {
                Ok(Change::Tools) => sink.notify_tool_list_changed().await,
                Ok(Change::Resources) => sink.notify_resource_list_changed().await,
                Ok(Change::Prompts) => sink.notify_prompt_list_changed().await,
                Ok(Change::ResourceUpdated(_))
                | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => Ok(()),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(()),
            };
            match sent {
                // A category this agent did not ask for.
                Ok(()) | Err(SubscriptionSendError::NotificationNotAccepted(_)) => {}
                Err(_) => return Ok(()),
            }
        }
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let caller = caller(&ctx, None)?;
        let lists = join_all(
            self.mcp
                .upstreams
                .iter()
                .map(|u| async move { (u, u.tools().await) }),
        )
        .await;
        let policy = self.mcp.gateway.policy.current();
        let mut out = vec![];
        for (u, got) in lists {
            match got {
                Ok(tools) => {
                    for tool in tools.iter() {
                        if self.mcp.hide_denied_tools
                            && policy.always_denies(
                                &caller.who,
                                &naming::tool_kind(&u.name, &tool.name),
                                &naming::tool_resource(&u.name, &tool.name),
                            )
                        {
                            continue;
                        }
                        let mut tool = tool.clone();
                        tool.name = naming::qualify(&u.name, &tool.name).into();
                        out.push(tool);
                    }
                }
                Err(e) => {
                    tracing::warn!(upstream = %u.name, error = %e, "tools/list failed; its tools are left out")
                }
            }
        }
        out.extend(builtin::tools(
            &self.mcp.gateway,
            &caller.who,
            self.mcp.hide_denied_tools,
        ));
        Ok(ListToolsResult::with_all_items(out))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        // The whole call (submit, wait, forward) in the trace it carried.
        let trace = caller::trace_of(request.meta.as_ref(), &ctx);
        countersign_app::trace::scope(trace, self.call_tool_traced(request, ctx)).await
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        let caller = caller(&ctx, None)?;
        let task = tasks::get(&self.mcp, &caller.who, &request.task_id).await?;
        Ok(GetTaskResult::new(task))
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let caller = caller(&ctx, None)?;
        tasks::cancel(&self.mcp, &caller.who, &request.task_id).await
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(
            self.list_all_resources().await,
        ))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(
            self.list_all_templates().await,
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        actions::refuse_unrecorded(
            request.input_responses.as_ref(),
            request.request_state.as_deref(),
        )?;
        let upstream = self.owner_of(&request.uri).await.ok_or_else(|| {
            ErrorData::resource_not_found(
                format!("no MCP server behind this gateway offers `{}`", request.uri),
                None,
            )
        })?;
        let planned = Planned::resource(actions::RESOURCE_READ, &upstream.name, &request.uri);
        let (upstream, forward, forwarding) = self
            .authorized(planned, request.meta.as_ref(), &ctx)
            .await?;
        let Forward::ReadResource(forward) = forward else {
            return Err(ErrorData::internal_error("not a resource read", None));
        };
        let answer = upstream
            .request(|peer| async move { peer.read_resource_once(forward).await })
            .await;
        forwarding.finish(&answer);
        answer.map_err(upstream_error).and_then(conform::resource)
    }

    #[allow(deprecated)]
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let upstream = self.routed(&request.uri).await?;
        let planned = Planned::resource(actions::RESOURCE_SUBSCRIBE, &upstream.name, &request.uri);
        let (upstream, forward, forwarding) = self
            .authorized(planned, request.meta.as_ref(), &ctx)
            .await?;
        let Forward::Subscribe(forward) = forward else {
            return Err(ErrorData::internal_error("not a subscription", None));
        };
        let answer = upstream
            .request(|peer| async move { peer.subscribe(forward).await })
            .await;
        forwarding.finish(&answer);
        answer.map_err(upstream_error)
    }

    #[allow(deprecated)]
    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let upstream = self.routed(&request.uri).await?;
        let planned =
            Planned::resource(actions::RESOURCE_UNSUBSCRIBE, &upstream.name, &request.uri);
        let (upstream, forward, forwarding) = self
            .authorized(planned, request.meta.as_ref(), &ctx)
            .await?;
        let Forward::Unsubscribe(forward) = forward else {
            return Err(ErrorData::internal_error("not an unsubscription", None));
        };
        let answer = upstream
            .request(|peer| async move { peer.unsubscribe(forward).await })
            .await;
        forwarding.finish(&answer);
        answer.map_err(upstream_error)
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let mut out = vec![];
        for (u, prompts) in self
            .ask_every("prompts/list", |peer| async move {
                peer.list_all_prompts().await
            })
            .await
        {
            out.extend(prompts.into_iter().map(|mut p| {
                p.name = naming::qualify(&u.name, &p.name);
                p
            }));
        }
        Ok(ListPromptsResult::with_all_items(out))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let unknown = || {
            ErrorData::invalid_params(
                format!(
                    "unknown prompt `{}`; prompts are named <server>__<prompt>",
                    request.name
                ),
                None,
            )
        };
        let (server, name) = naming::split(&request.name).ok_or_else(unknown)?;
        self.upstream(server).ok_or_else(unknown)?;
        actions::refuse_unrecorded(
            request.input_responses.as_ref(),
            request.request_state.as_deref(),
        )?;
        let planned = Planned::prompt(server, name, request.arguments.clone());
        let (upstream, forward, forwarding) = self
            .authorized(planned, request.meta.as_ref(), &ctx)
            .await?;
        let Forward::GetPrompt(forward) = forward else {
            return Err(ErrorData::internal_error("not a prompt", None));
        };
        let answer = upstream
            .request(|peer| async move { peer.get_prompt_once(forward).await })
            .await;
        forwarding.finish(&answer);
        answer.map_err(upstream_error).and_then(conform::prompt)
    }

    async fn complete(
        &self,
        mut request: CompleteRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        let upstream = match &mut request.r#ref {
            Reference::Prompt(prompt) => {
                let (server, name) = naming::split(&prompt.name)
                    .map(|(s, n)| (s.to_string(), n.to_string()))
                    .ok_or_else(|| ErrorData::invalid_params("unknown prompt", None))?;
                prompt.name = name;
                self.upstream(&server).cloned()
            }
            Reference::Resource(resource) => self.owner_of(&resource.uri).await,
            _ => None,
        }
        .ok_or_else(|| {
            ErrorData::invalid_params("nothing behind this gateway completes that", None)
        })?;
        let planned = Planned::completion(&upstream.name, &request).ok_or_else(|| {
            ErrorData::invalid_params("nothing behind this gateway completes that", None)
        })?;
        let (upstream, forward, forwarding) = self
            .authorized(planned, request.meta.as_ref(), &ctx)
            .await?;
        let Forward::Complete(forward) = forward else {
            return Err(ErrorData::internal_error("not a completion", None));
        };
        let answer = upstream
            .request(|peer| async move { peer.complete(forward).await })
            .await;
        forwarding.finish(&answer);
        answer.map(conform::completion).map_err(upstream_error)
    }
}
