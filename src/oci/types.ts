/** The image-spec vocabulary as TypeScript types (validated with ajv before use). */

/** `algorithm:hex`, e.g. `sha256:e3b0...`. Parse with `parseDigest`. */
export type Digest = `${string}:${string}`;

export interface Platform {
  architecture: string;
  os: string;
  'os.version'?: string;
  'os.features'?: string[];
  variant?: string;
  features?: string[];
}

export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  data?: string;
  platform?: Platform;
  artifactType?: string;
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  manifests: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export interface ContainerConfig {
  User?: string;
  ExposedPorts?: Record<string, object>;
  Env?: string[];
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  Volumes?: Record<string, object>;
  WorkingDir?: string;
  Labels?: Record<string, string>;
  StopSignal?: string;
  ArgsEscaped?: boolean;
}

export interface ImageConfig {
  created?: string;
  author?: string;
  architecture: string;
  os: string;
  'os.version'?: string;
  'os.features'?: string[];
  variant?: string;
  config?: ContainerConfig;
  rootfs: { type: 'layers'; diff_ids: Digest[] };
  history?: Array<{
    created?: string;
    author?: string;
    created_by?: string;
    comment?: string;
    empty_layer?: boolean;
  }>;
}

/** Annotation keys used in the store's index.json. */
export const Annotation = {
  refName: 'org.opencontainers.image.ref.name',
  /** The full reference the image was stored under (docker.io/library/alpine:latest). */
  imageName: 'io.s2n-oci.image.name',
  /** Digest of the index the manifest was selected from, when pulled through one. */
  indexDigest: 'io.s2n-oci.index.digest',
} as const;
