//! The one place that spells out every [`KeyStore`](super::KeyStore) and
//! [`ChangeFeed`](super::ChangeFeed) method for a store that forwards to another: `Arc<S>`, the counting decorator
//! and the scripted test store differ only in what they do before a call.

/// Implements `KeyStore` and `ChangeFeed` for `$ty` by forwarding every call to the store
/// `$inner` (an expression over `$this`, the receiver), after running the
/// optional `before` hook: an expression over `$this` and `$method` (the
/// method's variant of the enum `$methods` names, which has one variant
/// per method) that may `.await` and yields `Result<(), StoreError>`;
/// an error is returned without forwarding.
macro_rules! forward_key_store {
    (@hook $receiver:tt, $variant:ident) => {};
    (@hook $receiver:tt, $variant:ident, $hook_this:ident, $method:ident, $methods:path, $before:expr) => {{
        let $hook_this = $receiver;
        let $method = { use $methods as Methods; Methods::$variant };
        $before?;
    }};
    (
        impl[$($generics:tt)*] for $ty:ty, to |$this:ident| $inner:expr
        $(, before |$hook_this:ident, $method:ident: $methods:path| $before:expr)? $(,)?
    ) => {
        #[::async_trait::async_trait]
        impl<$($generics)*> $crate::store::KeyStore for $ty {
            async fn insert(
                &self,
                record: &$crate::record::KeyRecord,
            ) -> ::std::result::Result<(), $crate::store::StoreError> {
                $crate::store::forward::forward_key_store!(@hook self, Insert $(, $hook_this, $method, $methods, $before)?);
                let $this = self;
                ($inner).insert(record).await
            }

            async fn find_by_hash(
                &self,
                hash: &$crate::key::KeyHash,
            ) -> ::std::result::Result<
                ::std::option::Option<$crate::record::KeyRecord>,
                $crate::store::StoreError,
            > {
                $crate::store::forward::forward_key_store!(@hook self, FindByHash $(, $hook_this, $method, $methods, $before)?);
                let $this = self;
                ($inner).find_by_hash(hash).await
            }

            async fn find_by_id(
                &self,
                id: &$crate::record::KeyId,
            ) -> ::std::result::Result<
                ::std::option::Option<$crate::record::KeyRecord>,
                $crate::store::StoreError,
            > {
                $crate::store::forward::forward_key_store!(@hook self, FindById $(, $hook_this, $method, $methods, $before)?);
                let $this = self;
                ($inner).find_by_id(id).await
            }

            async fn list(
                &self,
                query: &$crate::store::ListKeys,
            ) -> ::std::result::Result<$crate::store::KeyPage, $crate::store::StoreError> {
                $crate::store::forward::forward_key_store!(@hook self, List $(, $hook_this, $method, $methods, $before)?);
                let $this = self;
                ($inner).list(query).await
            }

            async fn update(
                &self,
                owner: &$crate::record::OwnerId,
                id: &$crate::record::KeyId,
                update: &$crate::store::KeyUpdate,
            ) -> ::std::result::Result<
                ::std::option::Option<$crate::record::KeyRecord>,
                $crate::store::StoreError,
            > {
                $crate::store::forward::forward_key_store!(@hook self, Update $(, $hook_this, $method, $methods, $before)?);
                let $this = self;
                ($inner).update(owner, id, update).await
            }

            async fn record_last_used(
                &self,
                batch: &[$crate::store::LastUsed],
            ) -> ::std::result::Result<(), $crate::store::StoreError> {
                $crate::store::forward::forward_key_store!(@hook self, RecordLastUsed $(, $hook_this, $method, $methods, $before)?);
                let $this = self;
                ($inner).record_last_used(batch).await
            }
        }

        #[::async_trait::async_trait]
        impl<$($generics)*> $crate::store::ChangeFeed for $ty {
            async fn changes(
                &self,
                after: ::std::option::Option<$crate::store::ChangeCursor>,
                limit: usize,
            ) -> ::std::result::Result<$crate::store::ChangeBatch, $crate::store::StoreError> {
                $crate::store::forward::forward_key_store!(@hook self, Changes $(, $hook_this, $method, $methods, $before)?);
                let $this = self;
                ($inner).changes(after, limit).await
            }

            async fn prune_changes(
                &self,
                before: ::chrono::DateTime<::chrono::Utc>,
                limit: usize,
            ) -> ::std::result::Result<u64, $crate::store::StoreError> {
                $crate::store::forward::forward_key_store!(@hook self, PruneChanges $(, $hook_this, $method, $methods, $before)?);
                let $this = self;
                ($inner).prune_changes(before, limit).await
            }

            fn change_signal(&self) -> ::std::option::Option<$crate::store::ChangeSignal> {
                let $this = self;
                ($inner).change_signal()
            }
        }
    };
}

pub(crate) use forward_key_store;
