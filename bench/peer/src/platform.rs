//! trussed's virtual platform with the backends piv-authenticator's
//! `Client` asks for: trussed-auth's (PINs and their retry counters),
//! trussed-staging's (chunked files, key wrapping to files, HPKE), and
//! software RSA. The dispatch routes each request to its backend, the
//! way a Nitrokey 3's firmware does.
//!
//! Two ways to run trussed's service. trussed's own virtual runner
//! ([`with_polled_client`]) serves requests from a thread that looks for
//! them every millisecond, so each syscall waits up to 1 ms: a test
//! harness's cost, not the authenticator's. [`with_client`] runs the
//! service in the syscall itself, as the firmware's software interrupt
//! does on a Nitrokey 3; its figures are the ones to compare.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use trussed::backend::{Backend, BackendId};
use trussed::pipe::{ServiceEndpoint, TrussedChannel};
use trussed::serde_extensions::{ExtensionDispatch, ExtensionId, ExtensionImpl};
use trussed::service::ServiceResources;
use trussed::types::Context;
use trussed::types::CoreContext;
use trussed::virt::{self, StorageConfig, StoreConfig};
use trussed::{ClientImplementation, Platform, Service};
use trussed_auth::AuthExtension;
use trussed_auth_backend::{AuthBackend, AuthContext, FilesystemLayout};
use trussed_chunked::ChunkedExtension;
use trussed_core::Error;
use trussed_core::api::{Reply, Request, reply, request};
use trussed_core::types::Location;
use trussed_hpke::HpkeExtension;
use trussed_rsa_alloc::SoftwareRsa;
use trussed_staging::{StagingBackend, StagingContext};
use trussed_wrap_key_to_file::WrapKeyToFileExtension;

use crate::flash::{CountingFlash, Counts};

/// A client whose syscalls run the service at once.
pub type Client<'a> = ClientImplementation<'a, Synchronous<'a>, Dispatcher>;
/// A client of trussed's virtual runner (polled every millisecond).
pub type PolledClient<'a> = virt::Client<'a, Dispatcher>;

/// Routes requests to the backends.
pub struct Dispatcher {
    auth: AuthBackend,
    staging: StagingBackend,
}

impl Default for Dispatcher {
    fn default() -> Self {
        Dispatcher {
            auth: AuthBackend::new(Location::Internal, FilesystemLayout::V0),
            staging: StagingBackend::default(),
        }
    }
}

/// The backends, in the order a request tries them.
#[derive(Debug)]
pub enum Backends {
    Auth,
    Staging,
    Rsa,
}

const BACKENDS: &[BackendId<Backends>] = &[
    BackendId::Custom(Backends::Auth),
    BackendId::Custom(Backends::Staging),
    BackendId::Custom(Backends::Rsa),
    BackendId::Core,
];

/// The extensions, by the number the client sends.
#[derive(Debug)]
pub enum Extensions {
    Auth,
    Chunked,
    WrapKeyToFile,
    Hpke,
}

impl From<Extensions> for u8 {
    fn from(id: Extensions) -> u8 {
        match id {
            Extensions::Auth => 0,
            Extensions::Chunked => 1,
            Extensions::WrapKeyToFile => 2,
            Extensions::Hpke => 3,
        }
    }
}

impl TryFrom<u8> for Extensions {
    type Error = Error;
    fn try_from(id: u8) -> Result<Self, Error> {
        match id {
            0 => Ok(Extensions::Auth),
            1 => Ok(Extensions::Chunked),
            2 => Ok(Extensions::WrapKeyToFile),
            3 => Ok(Extensions::Hpke),
            _ => Err(Error::FunctionNotSupported),
        }
    }
}

impl ExtensionId<AuthExtension> for Dispatcher {
    type Id = Extensions;
    const ID: Extensions = Extensions::Auth;
}

impl ExtensionId<ChunkedExtension> for Dispatcher {
    type Id = Extensions;
    const ID: Extensions = Extensions::Chunked;
}

impl ExtensionId<WrapKeyToFileExtension> for Dispatcher {
    type Id = Extensions;
    const ID: Extensions = Extensions::WrapKeyToFile;
}

impl ExtensionId<HpkeExtension> for Dispatcher {
    type Id = Extensions;
    const ID: Extensions = Extensions::Hpke;
}

/// Each backend's per-client state.
#[derive(Default)]
pub struct Contexts {
    auth: AuthContext,
    staging: StagingContext,
}

impl ExtensionDispatch for Dispatcher {
    type BackendId = Backends;
    type Context = Contexts;
    type ExtensionId = Extensions;

    fn core_request<P: Platform>(
        &mut self,
        backend: &Backends,
        ctx: &mut Context<Contexts>,
        request: &Request,
        resources: &mut ServiceResources<P>,
    ) -> Result<Reply, Error> {
        match backend {
            Backends::Auth => {
                self.auth
                    .request(&mut ctx.core, &mut ctx.backends.auth, request, resources)
            }
            Backends::Staging => {
                self.staging
                    .request(&mut ctx.core, &mut ctx.backends.staging, request, resources)
            }
            Backends::Rsa => SoftwareRsa.request(&mut ctx.core, &mut (), request, resources),
        }
    }

    fn extension_request<P: Platform>(
        &mut self,
        backend: &Backends,
        extension: &Extensions,
        ctx: &mut Context<Contexts>,
        request: &request::SerdeExtension,
        resources: &mut ServiceResources<P>,
    ) -> Result<reply::SerdeExtension, Error> {
        let core = &mut ctx.core;
        match (backend, extension) {
            (Backends::Auth, Extensions::Auth) => {
                ExtensionImpl::<AuthExtension>::extension_request_serialized(
                    &mut self.auth,
                    core,
                    &mut ctx.backends.auth,
                    request,
                    resources,
                )
            }
            (Backends::Staging, Extensions::Chunked) => {
                ExtensionImpl::<ChunkedExtension>::extension_request_serialized(
                    &mut self.staging,
                    core,
                    &mut ctx.backends.staging,
                    request,
                    resources,
                )
            }
            (Backends::Staging, Extensions::WrapKeyToFile) => {
                ExtensionImpl::<WrapKeyToFileExtension>::extension_request_serialized(
                    &mut self.staging,
                    core,
                    &mut ctx.backends.staging,
                    request,
                    resources,
                )
            }
            (Backends::Staging, Extensions::Hpke) => {
                ExtensionImpl::<HpkeExtension>::extension_request_serialized(
                    &mut self.staging,
                    core,
                    &mut ctx.backends.staging,
                    request,
                    resources,
                )
            }
            _ => Err(Error::RequestNotAvailable),
        }
    }
}

/// The service and its one endpoint, run by each syscall.
struct Served<'a> {
    service: Service<virt::Platform<'a>, Dispatcher>,
    endpoints: Vec<ServiceEndpoint<'a, Backends, Contexts>>,
}

/// A syscall that processes the request then and there.
pub struct Synchronous<'a>(Rc<RefCell<Served<'a>>>);

impl trussed::platform::Syscall for Synchronous<'_> {
    fn syscall(&mut self) {
        let mut served = self.0.borrow_mut();
        let Served { service, endpoints } = &mut *served;
        service.process(endpoints);
    }
}

/// Fresh counting flash (internal and external; the volatile store is RAM
/// on a device too, and not counted).
fn store(counts: &Arc<Counts>) -> StoreConfig<'static> {
    let flash = |counts| StorageConfig {
        storage: Box::new(CountingFlash::new(counts)),
        format: true,
    };
    StoreConfig {
        internal: flash(Arc::clone(counts)),
        external: flash(Arc::clone(counts)),
        volatile: flash(Arc::new(Counts::default())),
    }
}

/// Runs `f` with a client whose syscalls run the service synchronously.
pub fn with_client<R>(counts: Arc<Counts>, f: impl FnOnce(Client<'_>) -> R) -> R {
    let channel = TrussedChannel::new();
    virt::with_platform(store(&counts), |platform| {
        let (requester, responder) = channel.split().expect("a fresh channel");
        let context = CoreContext::new("piv".try_into().expect("a short client id"));
        let served = Served {
            service: Service::with_dispatch(platform, Dispatcher::default()),
            endpoints: vec![ServiceEndpoint::new(responder, context, BACKENDS)],
        };
        let syscall = Synchronous(Rc::new(RefCell::new(served)));
        f(ClientImplementation::new(requester, syscall, None))
    })
}

/// Runs `f` with a client of trussed's virtual runner.
pub fn with_polled_client<R>(counts: Arc<Counts>, f: impl FnOnce(PolledClient<'_>) -> R) -> R {
    virt::with_platform(store(&counts), |platform| {
        platform.run_client_with_backends("piv", Dispatcher::default(), BACKENDS, f)
    })
}
