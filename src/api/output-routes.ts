import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { OutputRecord } from '../state/output-record.ts';
import type { OutputRepository } from '../state/output-repo.ts';
import { ApiError } from './errors.ts';
import { Output, OutputCreate, OutputParams, OutputUpdate, type OutputStatus } from './output-schemas.ts';
import { commonErrorResponses, Envelope, ErrorEnvelope, ok, UidParams } from './schemas.ts';

/** The run status of an output while its input is live on this node (from the simulcast layer). */
export type OutputRunView = Omit<OutputStatus, 'current'> & { current: { state: 'connecting' | 'connected' | 'reconnecting'; statusEnteredAt: string } };

export interface OutputRoutesOptions {
  outputs: OutputRepository;
  status?: (liveInputUid: string, outputUid: string) => OutputRunView | undefined;
  /** Told after a successful change, so that a live session applies it at once. */
  onChange?: (liveInputUid: string) => Promise<void>;
}

const TAGS = ['Live input outputs (simulcast)'];
const withNotFound = { ...commonErrorResponses, 404: ErrorEnvelope };

export async function outputRoutes(fastify: FastifyInstance, opts: OutputRoutesOptions): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { outputs, status, onChange } = opts;

  const resting = (r: OutputRecord): OutputStatus => ({
    current: { state: r.enabled ? 'idle' : 'disabled', statusEnteredAt: null },
    lastError: null,
    reconnects: 0,
    bytesSent: 0,
    droppedTags: 0,
  });
  const view = (r: OutputRecord): Output => ({
    uid: r.uid,
    url: r.url,
    streamKey: r.streamKey,
    enabled: r.enabled,
    status: (r.enabled ? status?.(r.liveInput, r.uid) : undefined) ?? resting(r),
    created: r.created,
    modified: r.modified,
  });
  const changed = async (liveInputUid: string, log: FastifyInstance['log']) => {
    try {
      await onChange?.(liveInputUid);
    } catch (error) {
      // The change is stored; the live layer logs its own failures and retries on the next change.
      log.warn({ err: error, liveInput: liveInputUid }, 'could not apply an output change to the live session');
    }
  };
  const inputNotFound = (uid: string) => new ApiError('LIVE_INPUT_NOT_FOUND', `Live input ${uid} not found`);
  const outputNotFound = (uid: string) => new ApiError('OUTPUT_NOT_FOUND', `Output ${uid} not found on this live input`);

  app.post(
    '/live_inputs/:uid/outputs',
    {
      schema: {
        summary: 'Add an output: restream the input to an RTMP(S) or SRT target while it is live',
        tags: TAGS,
        params: UidParams,
        body: OutputCreate,
        response: { 201: Envelope(Output), ...withNotFound, 409: ErrorEnvelope },
      },
    },
    async (request, reply) => {
      const { uid } = request.params;
      const result = await outputs.create(uid, request.body);
      if (!result.ok) {
        if (result.reason === 'live_input_not_found') throw inputNotFound(uid);
        throw new ApiError('OUTPUT_LIMIT_REACHED', `A live input can have at most ${outputs.maxPerInput} outputs`);
      }
      request.log.info({ liveInput: uid, output: result.record.uid }, 'output created');
      await changed(uid, request.log);
      return reply.code(201).send(ok(view(result.record)));
    },
  );

  app.get(
    '/live_inputs/:uid/outputs',
    {
      schema: {
        summary: 'List the outputs of a live input, oldest first, with their status',
        tags: TAGS,
        params: UidParams,
        response: { 200: Envelope(Type.Array(Output)), ...withNotFound },
      },
    },
    async (request) => {
      const { uid } = request.params;
      const [list, exists] = await Promise.all([outputs.list(uid), outputs.liveInputExists(uid)]);
      if (!exists) throw inputNotFound(uid);
      return ok(list.map(view));
    },
  );

  app.get(
    '/live_inputs/:uid/outputs/:outputUid',
    {
      schema: {
        summary: 'Get one output with its status',
        tags: TAGS,
        params: OutputParams,
        response: { 200: Envelope(Output), ...withNotFound },
      },
    },
    async (request) => {
      const { uid, outputUid } = request.params;
      const record = await outputs.get(uid, outputUid);
      if (!record) throw await notFound(uid, outputUid);
      return ok(view(record));
    },
  );

  app.put(
    '/live_inputs/:uid/outputs/:outputUid',
    {
      schema: {
        summary: 'Update an output (enable, disable, retarget); applied at once while live',
        tags: TAGS,
        params: OutputParams,
        body: OutputUpdate,
        response: { 200: Envelope(Output), ...withNotFound },
      },
    },
    async (request) => {
      const { uid, outputUid } = request.params;
      const record = await outputs.update(uid, outputUid, request.body);
      if (!record) throw await notFound(uid, outputUid);
      request.log.info({ liveInput: uid, output: outputUid, enabled: record.enabled }, 'output updated');
      await changed(uid, request.log);
      return ok(view(record));
    },
  );

  app.delete(
    '/live_inputs/:uid/outputs/:outputUid',
    {
      schema: {
        summary: 'Delete an output; a running restream to it stops at once',
        tags: TAGS,
        params: OutputParams,
        response: { 200: Envelope(Type.Null()), ...withNotFound },
      },
    },
    async (request) => {
      const { uid, outputUid } = request.params;
      if (!(await outputs.delete(uid, outputUid))) throw await notFound(uid, outputUid);
      request.log.info({ liveInput: uid, output: outputUid }, 'output deleted');
      await changed(uid, request.log);
      return ok(null);
    },
  );

  async function notFound(uid: string, outputUid: string): Promise<ApiError> {
    return (await outputs.liveInputExists(uid)) ? outputNotFound(outputUid) : inputNotFound(uid);
  }
}
