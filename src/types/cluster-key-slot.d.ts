/** The package ships no types: its default export is the Redis Cluster slot (0…16383) of a key. */
declare module 'cluster-key-slot' {
  export default function calculateSlot(key: string | Buffer): number;
}
