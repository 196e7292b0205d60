// The rules for today's extortion and obfuscated spam (decision 0023), one file each or per
// family; rules.ts runs them after its own.
import { CRYPTO_ADDRESS } from './crypto-address.ts';
import { EXTORTION_DEMAND } from './extortion-demand.ts';
import { EXTORTION_WORDS } from './extortion.ts';
import { INVISIBLE_IN_WORDS, MIXED_SCRIPT_WORDS, SPLIT_WORDS } from './obfuscation.ts';
import { PAYMENT_DEMAND } from './payment-demand.ts';
import { FROM_EQ_TO, MISSING_DATE_AND_MID } from './sender-self.ts';
import type { Rule } from '../rules.ts';

export const MODERN_RULES: readonly Rule[] = [CRYPTO_ADDRESS, PAYMENT_DEMAND, EXTORTION_WORDS, EXTORTION_DEMAND, SPLIT_WORDS, MIXED_SCRIPT_WORDS, INVISIBLE_IN_WORDS, FROM_EQ_TO, MISSING_DATE_AND_MID];
