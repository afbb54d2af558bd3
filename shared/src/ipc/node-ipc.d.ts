declare module 'node-ipc' {
  export class IPCModule {
    constructor();
  }
}
