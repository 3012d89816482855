// Shared by the etcd chaos supervisor (chaos/etcd.ts) and its clients (chaos/etcd_child.ts).

/** The mutex names of the run (EtcdLock). */
export const MUTEXES = ["chaos/m0", "chaos/m1"];
/** The reader-writer lock name of the run (EtcdReaderWriterLock). */
export const RWLOCK = "chaos/rw";
