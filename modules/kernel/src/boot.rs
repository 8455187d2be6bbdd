//! From a loaded configuration to running modules, and back down.
//!
//! [`BootPlan::new`] checks the configuration against the [`ModuleCatalog`] — unknown modules and
//! providers, settings, required modules that are missing or disabled, dependency cycles — and
//! reports every problem at once. [`BootPlan::boot`] then runs prepare → start →
//! after-all-started in dependency order, and [`Kernel::shutdown`] stops the providers in the
//! reverse order, letting each flush.

use std::collections::HashMap;

use tracing::{debug, info, warn};

use crate::config::{ApplicationConfig, ConfigOverride, Selection};
use crate::error::{ConfigError, ConfigErrors, LifecycleError, ModuleError, Phase};
use crate::module::ModuleDefinition;
use crate::provider::{ModuleProvider, ProviderFactory};
use crate::services::{ModuleContext, ServiceRegistry};

/// Every module and provider this build of oap-rs knows.
pub struct ModuleCatalog {
    modules: Vec<ModuleDefinition>,
    factories: Vec<Box<dyn ProviderFactory>>,
    /// (module, provider, the module whose presence brings it).
    implicit: Vec<(&'static str, &'static str, &'static str)>,
}

impl ModuleCatalog {
    /// A catalog of the given modules and provider factories.
    pub fn new(modules: Vec<ModuleDefinition>, factories: Vec<Box<dyn ProviderFactory>>) -> Self {
        Self { modules, factories, implicit: Vec::new() }
    }

    /// Makes `module` one that runs, when the configuration does not list it, whenever the
    /// configuration lists `with`: then its `provider` is built with every setting at its default,
    /// and what it requires is checked like any module's. A configuration that lists the module
    /// chooses for itself (another provider, other settings, or `-` to leave it out). For our own
    /// modules that SkyWalking's `application.yml` cannot know, so that a file written for
    /// SkyWalking still boots a whole server.
    #[must_use]
    pub fn with_implicit(mut self, module: &'static str, provider: &'static str, with: &'static str) -> Self {
        self.implicit.push((module, provider, with));
        self
    }

    fn definition(&self, name: &str) -> Option<&ModuleDefinition> {
        self.modules.iter().find(|module| module.name == name)
    }

    fn factory(&self, module: &str, provider: &str) -> Option<&dyn ProviderFactory> {
        self.factories.iter().find(|f| f.module() == module && f.name() == provider).map(|f| &**f)
    }

    fn provider_names(&self, module: &str) -> Vec<&'static str> {
        self.factories.iter().filter(|f| f.module() == module).map(|f| f.name()).collect()
    }

    fn module_names(&self) -> Vec<&'static str> {
        self.modules.iter().map(|module| module.name).collect()
    }
}

/// One provider, built and placed in start order.
struct Step {
    module: &'static str,
    provider: &'static str,
    requires: &'static [&'static str],
    instance: Box<dyn ModuleProvider>,
    definition: ModuleDefinition,
    /// Built without the configuration listing it; starts as soon as what it requires has.
    implicit: bool,
}

/// Providers built from a valid configuration, in start order.
pub struct BootPlan {
    steps: Vec<Step>,
    registry: ServiceRegistry,
}

impl BootPlan {
    /// Validates `config` against `catalog` and builds the providers in start order.
    pub fn new(config: &ApplicationConfig, catalog: &ModuleCatalog) -> Result<BootPlan, ConfigErrors> {
        let mut errors = Vec::new();
        let mut built: Vec<Step> = Vec::new();
        for module in &config.modules {
            let Some(definition) = catalog.definition(&module.name) else {
                if module.selection != Selection::Disabled {
                    errors.push(ConfigError::new(
                        &module.name,
                        format!("unknown module `{}` (available: {})", module.name, catalog.module_names().join(", ")),
                    ));
                }
                continue;
            };
            let Some(provider) = module.provider() else { continue };
            let Some(factory) = catalog.factory(definition.name, &provider.name) else {
                errors.push(ConfigError::new(
                    format!("{}.selector", module.name),
                    format!(
                        "unknown provider `{}` for module `{}` (available: {})",
                        provider.name,
                        module.name,
                        catalog.provider_names(definition.name).join(", ")
                    ),
                ));
                continue;
            };
            match factory.build(&provider.settings) {
                Ok(instance) => built.push(Step {
                    module: definition.name,
                    provider: factory.name(),
                    requires: factory.requires(),
                    instance,
                    definition: definition.clone(),
                    implicit: false,
                }),
                Err(provider_errors) => errors.extend(provider_errors),
            }
        }
        add_implicit(config, catalog, &mut built, &mut errors);
        check_requirements(config, catalog, &built, &mut errors);
        ConfigErrors(errors).into_result()?;

        let order = start_order(&built)
            .map_err(|cycle| ConfigError::new("", format!("module dependency cycle: {}", cycle.join(" -> "))))?;
        let registry = ServiceRegistry::new(built.iter().map(|step| &step.definition));
        let mut slots: Vec<Option<Step>> = built.into_iter().map(Some).collect();
        let steps = order.into_iter().filter_map(|index| slots[index].take()).collect();
        Ok(BootPlan { steps, registry })
    }

    /// Loads YAML text and plans the boot, reporting the problems of both steps together.
    pub fn from_yaml(
        text: &str,
        origin: &str,
        env: &dyn Fn(&str) -> Option<String>,
        overrides: &[ConfigOverride],
        catalog: &ModuleCatalog,
    ) -> Result<BootPlan, ConfigErrors> {
        let (config, mut errors) = ApplicationConfig::load_collecting(text, origin, env, overrides);
        match BootPlan::new(&config, catalog) {
            Ok(plan) if errors.is_empty() => Ok(plan),
            Ok(_) => Err(ConfigErrors(errors)),
            Err(ConfigErrors(plan_errors)) => {
                errors.extend(plan_errors);
                Err(ConfigErrors(errors))
            }
        }
    }

    /// `(module, provider)` pairs in start order.
    pub fn order(&self) -> Vec<(&'static str, &'static str)> {
        self.steps.iter().map(|step| (step.module, step.provider)).collect()
    }

    /// Runs prepare, start and after-all-started on every provider in order. When a step fails,
    /// the providers already prepared are shut down in reverse order before the error returns.
    pub async fn boot(self) -> Result<Kernel, LifecycleError> {
        let BootPlan { mut steps, mut registry } = self;
        let mut prepared = 0;
        for phase in [Phase::Prepare, Phase::Start, Phase::AfterAllStarted] {
            for index in 0..steps.len() {
                let step = &mut steps[index];
                debug!(module = step.module, provider = step.provider, %phase, "module lifecycle step");
                let mut ctx = ModuleContext::new(step.module, step.provider, step.requires, phase, &mut registry);
                let outcome = match phase {
                    Phase::Prepare => {
                        step.instance.prepare(&mut ctx).await.and_then(|()| missing_services(step, &registry))
                    }
                    Phase::Start => step.instance.start(&mut ctx).await,
                    _ => step.instance.after_all_started(&mut ctx).await,
                };
                if let Err(source) = outcome {
                    let error = LifecycleError { module: step.module, provider: step.provider, phase, source };
                    // A provider whose prepare failed has nothing to shut down; one whose start
                    // failed may have bound resources, so it is included.
                    let cleanup = if phase == Phase::Prepare { prepared } else { steps.len() };
                    steps.truncate(cleanup);
                    for failure in shut_down(steps, None).await {
                        warn!(error = %failure, "while rolling back a failed start");
                    }
                    return Err(error);
                }
                if phase == Phase::Prepare {
                    prepared += 1;
                }
            }
        }
        for step in &steps {
            info!(module = step.module, provider = step.provider, "module started");
        }
        Ok(Kernel { steps, registry })
    }
}

/// Every registered provider, running.
pub struct Kernel {
    steps: Vec<Step>,
    registry: ServiceRegistry,
}

impl Kernel {
    /// A service registered by any running provider (for the binary and tests).
    pub fn service<T: Clone + 'static>(&self) -> Option<T> {
        self.registry.get::<T>()
    }

    /// `(module, provider)` pairs in start order.
    pub fn order(&self) -> Vec<(&'static str, &'static str)> {
        self.steps.iter().map(|step| (step.module, step.provider)).collect()
    }

    /// Stops the providers: first every one stops its intake, then every one shuts down, both
    /// in reverse start order (each after the ones that depend on it). Every provider gets its
    /// turn even if an earlier one failed; the failures are returned.
    pub async fn shutdown(self) -> Vec<LifecycleError> {
        self.stop(None).await
    }

    /// [`Kernel::shutdown`] within `limit`: a provider still stopping when it passes is left
    /// unfinished, and it and every provider not reached yet are reported as failures that say
    /// so — stopping always ends, whatever state a module is in.
    pub async fn shutdown_within(self, limit: std::time::Duration) -> Vec<LifecycleError> {
        self.stop(Some(tokio::time::Instant::now() + limit)).await
    }

    async fn stop(mut self, deadline: Option<tokio::time::Instant>) -> Vec<LifecycleError> {
        let mut failures = Vec::new();
        for step in self.steps.iter_mut().rev() {
            debug!(module = step.module, provider = step.provider, "stopping the intake of module");
            let stopped = match deadline {
                None => Some(step.instance.stop_intake().await),
                Some(deadline) => tokio::time::timeout_at(deadline, step.instance.stop_intake()).await.ok(),
            };
            match stopped {
                Some(Ok(())) => {}
                Some(Err(source)) => failures.push(LifecycleError {
                    module: step.module,
                    provider: step.provider,
                    phase: Phase::Shutdown,
                    source,
                }),
                None => {
                    failures.push(LifecycleError {
                        module: step.module,
                        provider: step.provider,
                        phase: Phase::Shutdown,
                        source: ModuleError::Other(
                            "still taking work in at the shutdown deadline; nothing was flushed".to_owned(),
                        ),
                    });
                    return failures;
                }
            }
        }
        failures.extend(shut_down(self.steps, deadline).await);
        failures
    }
}

async fn shut_down(mut steps: Vec<Step>, deadline: Option<tokio::time::Instant>) -> Vec<LifecycleError> {
    let mut failures = Vec::new();
    while let Some(mut step) = steps.pop() {
        debug!(module = step.module, provider = step.provider, "shutting down module");
        let stopped = match deadline {
            None => Some(step.instance.shutdown().await),
            Some(deadline) => tokio::time::timeout_at(deadline, step.instance.shutdown()).await.ok(),
        };
        let timed_out = stopped.is_none();
        let failure = match stopped {
            Some(Ok(())) => continue,
            Some(Err(source)) => source,
            None => {
                let mut unfinished = vec![format!("{}/{}", step.module, step.provider)];
                unfinished.extend(steps.iter().rev().map(|step| format!("{}/{}", step.module, step.provider)));
                ModuleError::Other(format!(
                    "did not stop before the shutdown deadline; left unfinished: {}",
                    unfinished.join(", ")
                ))
            }
        };
        failures.push(LifecycleError {
            module: step.module,
            provider: step.provider,
            phase: Phase::Shutdown,
            source: failure,
        });
        if timed_out {
            break;
        }
    }
    failures
}

fn missing_services(step: &Step, registry: &ServiceRegistry) -> Result<(), ModuleError> {
    let missing: Vec<&str> = step
        .definition
        .services
        .iter()
        .filter(|service| !registry.is_registered(service.type_id))
        .map(|service| service.type_name)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ModuleError::Other(format!("did not register the services its module declares: {}", missing.join(", "))))
    }
}

/// Builds the implicit modules the configuration does not list, each when the configuration lists
/// the module that brings it (a file with no `storage` runs no pipeline to store with); what they
/// require is then reported like any module's requirements.
fn add_implicit(
    config: &ApplicationConfig,
    catalog: &ModuleCatalog,
    built: &mut Vec<Step>,
    errors: &mut Vec<ConfigError>,
) {
    for &(module, provider, with) in &catalog.implicit {
        if config.module(module).is_some() || config.module(with).is_none() {
            continue;
        }
        let (Some(definition), Some(factory)) = (catalog.definition(module), catalog.factory(module, provider)) else {
            errors.push(ConfigError::new(module, format!("the implicit provider `{provider}` is not in this build")));
            continue;
        };
        match factory.build(&serde_yaml_ng::Mapping::new()) {
            Ok(instance) => built.push(Step {
                module,
                provider,
                requires: factory.requires(),
                instance,
                definition: definition.clone(),
                implicit: true,
            }),
            Err(provider_errors) => errors.extend(provider_errors),
        }
    }
}

fn check_requirements(
    config: &ApplicationConfig,
    catalog: &ModuleCatalog,
    built: &[Step],
    errors: &mut Vec<ConfigError>,
) {
    for step in built {
        for required in step.requires {
            if built.iter().any(|other| other.module == *required) {
                continue;
            }
            let why = match config.module(required).map(|module| &module.selection) {
                Some(Selection::Disabled) => "which is disabled (selector `-`)",
                // Its own error is already reported.
                Some(Selection::Provider(_) | Selection::Invalid) => continue,
                None if catalog.definition(required).is_some() => "which the configuration does not list",
                None => "which this build does not include",
            };
            errors.push(ConfigError::new(
                step.module,
                format!("provider `{}` requires module `{required}`, {why}", step.provider),
            ));
        }
    }
}

/// Indices of `steps` in an order where every provider comes after those it requires; among
/// providers free to go, an implicit one goes first (right after what it requires), then the
/// configuration's order is kept. A cycle is returned by name.
fn start_order(steps: &[Step]) -> Result<Vec<usize>, Vec<&'static str>> {
    let index_of: HashMap<&str, usize> = steps.iter().enumerate().map(|(i, step)| (step.module, i)).collect();
    let requirements: Vec<Vec<usize>> = steps
        .iter()
        .map(|step| step.requires.iter().filter_map(|name| index_of.get(name).copied()).collect())
        .collect();
    let mut placed = vec![false; steps.len()];
    let mut order = Vec::with_capacity(steps.len());
    while order.len() < steps.len() {
        let free = |i: usize| !placed[i] && requirements[i].iter().all(|&r| placed[r]);
        let next =
            (0..steps.len()).find(|&i| steps[i].implicit && free(i)).or_else(|| (0..steps.len()).find(|&i| free(i)));
        match next {
            Some(index) => {
                placed[index] = true;
                order.push(index);
            }
            None => {
                // Every unplaced provider waits on another unplaced one: walking those edges
                // from any of them must come back to a provider already visited.
                let mut path = vec![(0..steps.len()).find(|&i| !placed[i]).expect("some step is unplaced")];
                loop {
                    let current = *path.last().expect("path is never empty");
                    let waiting_on =
                        requirements[current].iter().copied().find(|&r| !placed[r]).expect("an unplaced requirement");
                    if let Some(start) = path.iter().position(|&i| i == waiting_on) {
                        let mut cycle: Vec<&'static str> = path[start..].iter().map(|&i| steps[i].module).collect();
                        cycle.push(steps[waiting_on].module);
                        return Err(cycle);
                    }
                    path.push(waiting_on);
                }
            }
        }
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use async_trait::async_trait;
    use serde::Deserialize;

    use super::*;
    use crate::module::ServiceDecl;
    use crate::provider::TypedProviderFactory;

    type Events = Arc<Mutex<Vec<String>>>;

    /// A service type owned by the test module `a`.
    #[derive(Clone)]
    struct GreetingService(&'static str);

    struct Recorder {
        module: &'static str,
        events: Events,
        fail_start: bool,
        hang_shutdown: bool,
    }

    #[async_trait]
    impl ModuleProvider for Recorder {
        async fn prepare(&mut self, ctx: &mut ModuleContext<'_>) -> Result<(), ModuleError> {
            if self.module == "a" {
                ctx.register(GreetingService("hello"))?;
            }
            if self.module == "b" {
                let greeting = ctx.service::<GreetingService>()?;
                self.events.lock().expect("lock").push(format!("b sees {}", greeting.0));
            }
            self.events.lock().expect("lock").push(format!("prepare {}", self.module));
            Ok(())
        }

        async fn start(&mut self, _ctx: &mut ModuleContext<'_>) -> Result<(), ModuleError> {
            self.events.lock().expect("lock").push(format!("start {}", self.module));
            if self.fail_start {
                return Err(ModuleError::Other("boom".to_owned()));
            }
            Ok(())
        }

        async fn after_all_started(&mut self, _ctx: &mut ModuleContext<'_>) -> Result<(), ModuleError> {
            self.events.lock().expect("lock").push(format!("ready {}", self.module));
            Ok(())
        }

        async fn stop_intake(&mut self) -> Result<(), ModuleError> {
            self.events.lock().expect("lock").push(format!("intake {}", self.module));
            Ok(())
        }

        async fn shutdown(&mut self) -> Result<(), ModuleError> {
            self.events.lock().expect("lock").push(format!("shutdown {}", self.module));
            if self.hang_shutdown {
                std::future::pending::<()>().await;
            }
            Ok(())
        }
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    struct RecorderConfig {
        #[serde(rename = "failStart")]
        fail_start: bool,
        #[serde(rename = "hangShutdown")]
        hang_shutdown: bool,
        port: u16,
    }

    macro_rules! recorder_factory {
        ($factory:ident, $module:literal, $requires:expr) => {
            struct $factory(Events);

            impl TypedProviderFactory for $factory {
                const MODULE: &'static str = $module;
                const NAME: &'static str = "default";
                const REQUIRES: &'static [&'static str] = $requires;
                type Config = RecorderConfig;

                fn build(&self, config: RecorderConfig) -> Result<Box<dyn ModuleProvider>, Vec<ConfigError>> {
                    if config.port == 1 {
                        return Err(vec![ConfigError::new("port", "port 1 is reserved")]);
                    }
                    Ok(Box::new(Recorder {
                        module: $module,
                        events: self.0.clone(),
                        fail_start: config.fail_start,
                        hang_shutdown: config.hang_shutdown,
                    }))
                }
            }
        };
    }

    recorder_factory!(AFactory, "a", &[]);
    recorder_factory!(BFactory, "b", &["a"]);
    recorder_factory!(CFactory, "c", &["b"]);
    recorder_factory!(LoopAFactory, "x", &["y"]);
    recorder_factory!(LoopBFactory, "y", &["z"]);
    recorder_factory!(LoopCFactory, "z", &["x"]);

    fn catalog(events: &Events) -> ModuleCatalog {
        let module = |name| ModuleDefinition::new(name, vec![]);
        ModuleCatalog::new(
            vec![
                ModuleDefinition::new("a", vec![ServiceDecl::of::<GreetingService>()]),
                module("b"),
                module("c"),
                module("x"),
                module("y"),
                module("z"),
            ],
            vec![
                Box::new(AFactory(events.clone())),
                Box::new(BFactory(events.clone())),
                Box::new(CFactory(events.clone())),
                Box::new(LoopAFactory(events.clone())),
                Box::new(LoopBFactory(events.clone())),
                Box::new(LoopCFactory(events.clone())),
            ],
        )
    }

    fn plan(yaml: &str, overrides: &[&str], events: &Events) -> Result<BootPlan, ConfigErrors> {
        let overrides: Vec<ConfigOverride> = overrides.iter().map(|o| o.parse().expect("well formed")).collect();
        BootPlan::from_yaml(yaml, "test.yml", &|_| None, &overrides, &catalog(events))
    }

    fn messages(errors: &ConfigErrors) -> Vec<String> {
        errors.errors().iter().map(ToString::to_string).collect()
    }

    const CHAIN: &str =
        "c:\n  selector: default\n  default: {}\nb:\n  default: {}\na:\n  selector: ${A:default}\n  default: {}\n";

    #[test]
    fn an_implicit_module_runs_unlisted_after_what_it_requires_unless_the_file_says_otherwise() {
        let events = Events::default();
        let with_b = || catalog(&events).with_implicit("b", "default", "a");
        let yaml = "c:\n  default: {}\na:\n  default: {}\n";
        let plan = BootPlan::from_yaml(yaml, "test.yml", &|_| None, &[], &with_b()).expect("valid");
        assert_eq!(plan.order(), [("a", "default"), ("b", "default"), ("c", "default")]);

        let yaml = "a:\n  default: {}\nb:\n  selector: '-'\nc:\n  default: {}\n";
        let errors = BootPlan::from_yaml(yaml, "test.yml", &|_| None, &[], &with_b()).err().expect("c needs b");
        assert_eq!(messages(&errors), ["c: provider `default` requires module `b`, which is disabled (selector `-`)"]);

        // Without the module that brings it, an implicit module is not built.
        let yaml = "a:\n  default: {}\n";
        let plan =
            BootPlan::from_yaml(yaml, "test.yml", &|_| None, &[], &catalog(&events).with_implicit("c", "default", "x"))
                .expect("valid: nothing brings c");
        assert_eq!(plan.order(), [("a", "default")]);
        // With it, what the implicit module requires is checked like any module's.
        let errors =
            BootPlan::from_yaml(yaml, "test.yml", &|_| None, &[], &catalog(&events).with_implicit("c", "default", "a"))
                .err()
                .expect("c needs b, which is not listed");
        assert_eq!(
            messages(&errors),
            ["c: provider `default` requires module `b`, which the configuration does not list"]
        );

        let errors =
            BootPlan::from_yaml(yaml, "test.yml", &|_| None, &[], &catalog(&events).with_implicit("b", "nope", "a"))
                .err()
                .expect("no such provider");
        assert_eq!(messages(&errors), ["b: the implicit provider `nope` is not in this build"]);
    }

    #[test]
    fn providers_start_after_what_they_require() {
        let events = Events::default();
        let plan = plan(CHAIN, &[], &events).expect("valid");
        assert_eq!(plan.order(), [("a", "default"), ("b", "default"), ("c", "default")]);
    }

    #[tokio::test]
    async fn lifecycle_runs_in_order_and_shuts_down_in_reverse() {
        let events = Events::default();
        let kernel = plan(CHAIN, &[], &events).expect("valid").boot().await.expect("boots");
        assert_eq!(kernel.service::<GreetingService>().map(|g| g.0), Some("hello"));
        assert!(kernel.shutdown().await.is_empty());
        let events = events.lock().expect("lock").clone();
        assert_eq!(
            events,
            [
                "prepare a",
                "b sees hello",
                "prepare b",
                "prepare c",
                "start a",
                "start b",
                "start c",
                "ready a",
                "ready b",
                "ready c",
                "intake c",
                "intake b",
                "intake a",
                "shutdown c",
                "shutdown b",
                "shutdown a",
            ]
        );
    }

    #[tokio::test]
    async fn a_stop_that_hangs_ends_at_the_deadline_and_names_what_it_left() {
        let events = Events::default();
        let kernel =
            plan(CHAIN, &["b.default.hangShutdown=true"], &events).expect("valid").boot().await.expect("boots");
        let failures = kernel.shutdown_within(std::time::Duration::from_millis(100)).await;
        let messages: Vec<String> = failures.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            [
                "module `b` (provider `default`) failed to shut down: did not stop before the shutdown deadline; left unfinished: b/default, a/default"
            ]
        );
        let events = events.lock().expect("lock").clone();
        assert_eq!(events[events.len() - 2..], ["shutdown c", "shutdown b"]);
    }

    #[tokio::test]
    async fn failed_start_rolls_back_in_reverse() {
        let events = Events::default();
        let plan = plan(CHAIN, &["b.default.failStart=true"], &events).expect("valid");
        let error = plan.boot().await.err().expect("start of b fails");
        assert_eq!(error.to_string(), "module `b` (provider `default`) failed to start: boom");
        let events = events.lock().expect("lock").clone();
        let tail: Vec<&str> = events.iter().skip(4).map(String::as_str).collect();
        assert_eq!(tail, ["start a", "start b", "shutdown c", "shutdown b", "shutdown a"]);
    }

    #[test]
    fn dependency_cycle_is_named() {
        let events = Events::default();
        let yaml = "x:\n  default: {}\ny:\n  default: {}\nz:\n  default: {}\n";
        let errors = plan(yaml, &[], &events).err().expect("cycle");
        assert_eq!(messages(&errors), ["module dependency cycle: x -> y -> z -> x"]);
    }

    #[test]
    fn disabled_required_module_is_an_error() {
        let events = Events::default();
        let errors = plan(CHAIN, &["a.selector=-"], &events).err().expect("a disabled");
        assert_eq!(messages(&errors), ["b: provider `default` requires module `a`, which is disabled (selector `-`)"]);
        let errors = plan("b:\n  default: {}\n", &[], &events).err().expect("a missing");
        assert_eq!(
            messages(&errors),
            ["b: provider `default` requires module `a`, which the configuration does not list"]
        );
    }

    #[test]
    fn disabled_module_is_not_started() {
        let events = Events::default();
        let plan = plan("a:\n  default: {}\nc:\n  selector: '-'\n  default: {}\n", &[], &events).expect("valid");
        assert_eq!(plan.order(), [("a", "default")]);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let events = Events::default();
        let yaml = "a:\n  selector: nope\n  nope: {}\n  default: {}\nb:\n  default: {port: 1, colour: red}\nc:\n  default: {port: x}\nqueue:\n  default: {}\nignored:\n  selector: '-'\nx:\n  selector: missing\n  default: {}\n";
        let errors = plan(yaml, &[], &events).err().expect("many problems");
        assert_eq!(
            messages(&errors),
            [
                "x.selector: selects provider `missing`, but module `x` has no `missing` block (blocks: default)",
                "a.selector: unknown provider `nope` for module `a` (available: default)",
                "b.default.colour: unknown setting",
                "c.default.port: invalid type: string \"x\", expected u16",
                "queue: unknown module `queue` (available: a, b, c, x, y, z)",
            ]
        );
    }

    #[test]
    fn provider_validation_errors_get_full_paths() {
        let events = Events::default();
        let errors = plan("a:\n  default: {port: 1}\n", &[], &events).err().expect("reserved port");
        assert_eq!(messages(&errors), ["a.default.port: port 1 is reserved"]);
    }

    #[tokio::test]
    async fn a_service_of_an_unrequired_module_is_refused() {
        struct Sneaky;
        #[async_trait]
        impl ModuleProvider for Sneaky {
            async fn prepare(&mut self, ctx: &mut ModuleContext<'_>) -> Result<(), ModuleError> {
                ctx.service::<GreetingService>().map(|_| ())
            }
        }
        struct SneakyFactory;
        impl TypedProviderFactory for SneakyFactory {
            const MODULE: &'static str = "c";
            const NAME: &'static str = "sneaky";
            type Config = RecorderConfig;
            fn build(&self, _: RecorderConfig) -> Result<Box<dyn ModuleProvider>, Vec<ConfigError>> {
                Ok(Box::new(Sneaky))
            }
        }
        let events = Events::default();
        let catalog = ModuleCatalog::new(
            vec![
                ModuleDefinition::new("a", vec![ServiceDecl::of::<GreetingService>()]),
                ModuleDefinition::new("c", vec![]),
            ],
            vec![Box::new(AFactory(events.clone())), Box::new(SneakyFactory)],
        );
        let config =
            ApplicationConfig::load("a:\n  default: {}\nc:\n  sneaky: {}\n", "t", &|_| None, &[]).expect("valid");
        let error = BootPlan::new(&config, &catalog).expect("valid").boot().await.err().expect("refused");
        assert!(
            error.to_string().contains("belongs to module `a`, which provider `c/sneaky` does not require"),
            "{error}"
        );
    }
}
