// EXTORTION_DEMAND: the extortion story together with the means to pay (an address — here one of
// the right shape is enough, the story already says what it is — or an amount with a deadline). Each alone has an innocent reading; together they are the demand itself. A
// conjunction rule, as SpamAssassin's meta rules: its points are what Bayes trained on older mail
// cannot give (it puts this class at BAYES_00, -2.0, often).
import type { Rule } from '../rules.ts';
import { cryptoShaped, cryptoAddresses } from './crypto-address.ts';
import { isExtortion } from './extortion.ts';
import { paymentDemand } from './payment-demand.ts';

export const EXTORTION_DEMAND: Rule = {
  name: 'EXTORTION_DEMAND',
  points: 2.5,
  description: 'Extortion story with a payment address or an amount and deadline',
  test: (_m, f) => isExtortion(f.text, f) && (cryptoAddresses(f.text).length > 0 || paymentDemand(f.text) || cryptoShaped(f.text)),
};
